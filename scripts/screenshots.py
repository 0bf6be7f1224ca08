"""The README's screenshots: the chat page in Chromium (Debian's, /usr/bin/chromium) against
a server of its own (offline model, a fresh SQLite database), light and dark, desktop and
phone.

    .venv/bin/python scripts/screenshots.py [OUT_DIR]   # default: docs/screenshots
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PORT = 8766
URL = f"http://127.0.0.1:{PORT}"
IDLE = """() => !document.getElementById("send").disabled
  && [...document.querySelectorAll("li.message.assistant")].every((i) => i.dataset.status !== "streaming")"""
STREAMING_PAST = """(length) => {
  const reply = [...document.querySelectorAll("li.message.assistant")].at(-1);
  return reply?.dataset.status === "streaming" && reply.querySelector(".body").innerText.length > length;
}"""


def serve(work: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY")}
    env.update(DATABASE_URL=f"sqlite:///{work}/db.sqlite3", OFFLINE_MODEL_TPS="25")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "chatproject.serve", "-b", "127.0.0.1", "-p", str(PORT), "chatproject.asgi:application"],
        cwd=ROOT, env=env, stdout=open(f"{work}/server.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )
    for _ in range(100):
        try:
            if httpx.get(f"{URL}/healthz").status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not start; see {work}/server.log")


def say(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def to_bottom(page: Page) -> None:
    page.evaluate("document.getElementById('messages').scrollTop = 1e9")
    page.wait_for_timeout(300)


def shoot(browser: Browser, out: str) -> None:
    desktop = browser.new_context(viewport={"width": 1280, "height": 820}, color_scheme="light")
    page = desktop.new_page()
    page.goto(URL)
    page.wait_for_selector("#status[data-state=open]")
    say(page, "Show me a small Python function, with a code block")
    page.wait_for_function(IDLE, timeout=60_000)
    page.locator("li.message.assistant").last.get_by_role("button", name="Regenerate").click()
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE, timeout=60_000)
    say(page, "What time is it?")
    page.wait_for_function(IDLE, timeout=60_000)
    to_bottom(page)
    page.screenshot(path=f"{out}/desktop-finished.png")
    say(page, "And what is (2 + 3) * 7 / 2?")
    page.wait_for_function(STREAMING_PAST, arg=60, timeout=60_000)
    page.screenshot(path=f"{out}/desktop-streaming.png")
    page.wait_for_function(IDLE, timeout=60_000)
    to_bottom(page)
    state = desktop.storage_state()  # before the toggle: the phones follow their own scheme
    page.get_by_role("button", name="Dark mode").click()
    page.wait_for_timeout(300)
    page.screenshot(path=f"{out}/desktop-dark.png")
    conversation = page.url
    for scheme in ("light", "dark"):
        phone = browser.new_context(
            viewport={"width": 390, "height": 800}, device_scale_factor=2, is_mobile=True, has_touch=True,
            color_scheme=scheme, storage_state=state,  # type: ignore[arg-type]
        )
        page = phone.new_page()
        page.goto(conversation)
        page.wait_for_selector("#status[data-state=open]")
        if scheme == "light":
            say(page, "Thanks! One more, please")
            page.wait_for_function(STREAMING_PAST, arg=200, timeout=60_000)
            page.screenshot(path=f"{out}/mobile-streaming.png")
            page.wait_for_function(IDLE, timeout=60_000)
        else:
            to_bottom(page)
            page.screenshot(path=f"{out}/mobile-dark.png")
        phone.close()


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs/screenshots")
    os.makedirs(out, exist_ok=True)
    server = serve(tempfile.mkdtemp(prefix="chat-screenshots-"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
            shoot(browser, out)
            browser.close()
    finally:
        server.terminate()


if __name__ == "__main__":
    main()

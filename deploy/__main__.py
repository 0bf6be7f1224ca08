"""`python -m deploy` (scripts/stack.sh): run the scale-out stack's twin in the
foreground until Ctrl-C or SIGTERM (docs/deploy.md)."""

import argparse
import signal
import sys
import threading
from urllib.parse import urlsplit, urlunsplit

from .twin import Stack, tail


def _redact(url: str) -> str:
    """`url` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def serve(stack: Stack) -> int:
    """Run until SIGTERM or SIGINT (forwarded to the children as an orderly stop), or
    until a child exits on its own. 0 when everything stopped cleanly on a signal."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
    except Exception as exc:  # a service missing or failing: say which, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for worker in stack.workers:
        print(f"==> {worker.name} on {worker.url} (log: {worker.log})", file=sys.stderr)
    workers = len(stack.workers)
    print(
        f"==> serving on {stack.url} (nginx, {workers} worker{'s' if workers != 1 else ''}; "
        "Ctrl-C stops)",
        file=sys.stderr,
    )
    crashed: list[str] = []
    while not stopping.wait(0.5):
        crashed = stack.dead()
        if crashed:
            print(f"error: {', '.join(crashed)} exited; stopping", file=sys.stderr)
            for name in crashed:
                log = stack.dir / (f"{name}.log" if name.startswith("web") else "error.log")
                print(tail(log), file=sys.stderr)
            break
    print("==> stopping (workers drain first)", file=sys.stderr)
    codes = stack.stop()
    unclean = {name: code for name, code in codes.items() if code != 0}
    if unclean:
        print(f"exit codes: {unclean}", file=sys.stderr)
    return 1 if crashed or unclean else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/stack.sh",
        description="nginx in front of N daphne workers on the local Redis and PostgreSQL.",
    )
    parser.add_argument("--workers", type=int, default=2, help="daphne workers (default 2)")
    parser.add_argument("--port", type=int, default=8000, help="nginx's port (default 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="nginx's address (default 127.0.0.1)")
    parser.add_argument("--keep", action="store_true", help="keep logs and configs after stopping")
    parser.add_argument(
        "--tls-proxy", action="append", default=[], metavar="ADDRESS",
        help="a TLS proxy in front of nginx (address or CIDR, repeatable): nginx believes "
        "its X-Forwarded-For and X-Forwarded-Proto (default: nobody's)",
    )
    args = parser.parse_args(argv)
    stack = Stack(
        workers=args.workers, port=args.port, host=args.host, keep=args.keep, create_database=True,
        tls_proxies=args.tls_proxy,
    )
    print(
        f"==> REDIS_URL={_redact(stack.env['REDIS_URL'])} "
        f"DATABASE_URL={_redact(stack.env['DATABASE_URL'])} (files in {stack.dir})",
        file=sys.stderr,
    )
    return serve(stack)


if __name__ == "__main__":
    sys.exit(main())

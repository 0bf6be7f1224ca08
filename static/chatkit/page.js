// The /chatkit/ page: configures ChatKit's web component for a hosted workflow (session
// tokens from this server) or for this server's own ChatKit endpoint.

const config = JSON.parse(document.getElementById("chatkit-config").textContent);

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// Same-origin requests carry the CSRF token; ChatKit's own options pass through.
function sameOriginFetch(url, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("X-CSRFToken", csrfToken());
  return fetch(url, { ...options, headers, credentials: "same-origin" });
}

async function clientSecret(current) {
  if (current) {
    const refreshed = await sameOriginFetch(config.refreshUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: current }),
    });
    if (refreshed.ok) return (await refreshed.json()).client_secret;
  }
  const response = await sameOriginFetch(config.sessionUrl, { method: "POST" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `ChatKit session failed (${response.status})`);
  return body.client_secret;
}

export function options(cfg = config) {
  const api =
    cfg.mode === "hosted"
      ? { getClientSecret: clientSecret }
      : { url: cfg.apiUrl, domainKey: cfg.domainKey, fetch: sameOriginFetch };
  return { api, history: { enabled: true }, composer: { attachments: { enabled: false } } };
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

async function main() {
  const element = document.getElementById("chatkit");
  try {
    await loadScript(config.script);
    await customElements.whenDefined("openai-chatkit");
  } catch {
    element.hidden = true;
    document.getElementById("chatkit-unavailable").hidden = false;
    return;
  }
  element.setOptions(options());
}

main();

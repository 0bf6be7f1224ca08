// The colour theme: the system's (prefers-color-scheme) unless the reader chose one with
// the toggle, which is remembered (localStorage). Loaded in <head>, before the page paints.
const KEY = "theme";
const root = document.documentElement;

function stored() {
  try {
    const value = localStorage.getItem(KEY);
    return value === "light" || value === "dark" ? value : null;
  } catch {
    return null; // storage refused (private mode): follow the system
  }
}

function system() {
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

// The theme in force on <html data-theme>, and the code highlighting's matching sheet.
function apply(theme) {
  root.dataset.theme = theme;
  for (const sheet of document.querySelectorAll("link[data-code-theme]")) {
    sheet.media = sheet.dataset.codeTheme === theme ? "all" : "not all";
  }
  const toggle = document.getElementById("theme-toggle");
  toggle?.setAttribute("aria-pressed", String(theme === "dark"));
}

apply(stored() ?? system());
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => apply(stored() ?? system()));
document.addEventListener("DOMContentLoaded", () => {
  apply(root.dataset.theme);
  document.getElementById("theme-toggle")?.addEventListener("click", () => {
    const next = root.dataset.theme === "dark" ? "light" : "dark";
    try {
      localStorage.setItem(KEY, next);
    } catch {
      // not remembered, still applied
    }
    apply(next);
  });
});

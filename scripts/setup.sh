# Shared set-up for scripts/run.sh and scripts/test.sh (sourced, not run).
# Creates .venv with Python 3.11+ and installs the project into it when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)." >&2
  return 1
}

# ensure_venv EXTRAS: install the project (with pip extras, e.g. "dev") into .venv.
ensure_venv() {
  local extras="${1:-}" spec="." stamp
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$(find_python)" -m venv .venv
  fi
  stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras:-base}"
  if [ ! -f "$stamp" ]; then
    echo "==> installing Python dependencies${extras:+ ($extras)}"
    if ! { .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip &&
      .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"; } \
      >.venv/pip.log 2>&1; then
      cat .venv/pip.log >&2
      echo "error: installing the Python dependencies failed (log above)." >&2
      exit 1
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}

# ensure_node_modules: install the pinned front-end libraries (package-lock.json) with npm.
ensure_node_modules() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: Node.js 20+ with npm is required for the chat page's libraries." >&2
    echo "       Install it (Debian/Ubuntu: sudo apt-get install nodejs npm; macOS: brew install node)." >&2
    exit 1
  fi
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "==> installing front-end libraries (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error >.venv/npm.log 2>&1 || {
      cat .venv/npm.log >&2
      echo "error: npm ci failed (log above)." >&2
      exit 1
    }
  fi
}

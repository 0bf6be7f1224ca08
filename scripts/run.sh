#!/usr/bin/env bash
# Run the site on http://127.0.0.1:8000 with the embedded defaults (SQLite, in-memory
# streaming, offline model unless OPENAI_API_KEY is set). Any setting can be given
# in the environment; see the README.
source "$(dirname "$0")/setup.sh"
ensure_venv ""
ensure_node_modules
.venv/bin/python manage.py migrate --noinput
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
echo "==> serving on http://$HOST:$PORT"
exec .venv/bin/python -m chatproject.serve -b "$HOST" -p "$PORT" chatproject.asgi:application

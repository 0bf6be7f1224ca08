#!/usr/bin/env bash
# Run the whole test suite: lint, then pytest against real PostgreSQL and Redis.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/test_models.py -x).
source "$(dirname "$0")/setup.sh"
ensure_venv dev
ensure_node_modules
source scripts/services.sh
ensure_redis
ensure_postgres
ensure_chromium
ensure_nginx
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
unset REDIS_URL OPENAI_API_KEY OPENAI_BASE_URL

echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy (the streaming core and its edge)"
.venv/bin/mypy
echo "==> migrations are up to date"
.venv/bin/python manage.py makemigrations --check --dry-run >/dev/null
echo "==> JavaScript unit tests (node --test)"
node --test tests/js/
echo "==> pytest"
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The scale-out stack without Docker: nginx on http://127.0.0.1:8000 in front of daphne
# workers on the local Redis and PostgreSQL (started, or installed when root on Debian,
# as for the tests). Options: --workers N (default 2), --port P (default 8000),
# --host ADDRESS, --keep. REDIS_URL and DATABASE_URL may point elsewhere; any other
# setting comes from the environment too. Ctrl-C or SIGTERM stops it: the workers drain
# first. See docs/deploy.md.
source "$(dirname "$0")/setup.sh"
ensure_venv ""
ensure_node_modules
source scripts/services.sh
[ -n "${REDIS_URL:-}" ] || ensure_redis
[ -n "${DATABASE_URL:-}" ] || ensure_postgres
ensure_nginx
exec .venv/bin/python -m deploy "$@"

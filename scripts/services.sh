# Make sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) are up for the tests:
# start them if installed but stopped; install them with apt-get when we are root on Debian;
# otherwise say what to install. Sourced by scripts/test.sh and scripts/stack.sh.

port_open() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))))
PY
}

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  return 1
}

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing $* with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    return 1
  fi
}

ensure_redis() {
  port_open 6379 && return 0
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server || {
      echo "error: Redis is not running on 127.0.0.1:6379 and redis-server is not installed." >&2
      echo "       Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)." >&2
      exit 1
    }
  fi
  echo "==> starting Redis"
  mkdir -p /tmp/chat-redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /tmp/chat-redis --logfile /tmp/chat-redis/redis.log
  wait_port 6379 || { echo "error: Redis did not start (see /tmp/chat-redis/redis.log)." >&2; exit 1; }
}

ensure_postgres() {
  port_open 5432 && return 0
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql || {
      echo "error: PostgreSQL is not running on 127.0.0.1:5432 and is not installed." >&2
      echo "       Install it (Debian/Ubuntu: sudo apt-get install postgresql), allow the user" >&2
      echo "       'postgres' to connect over TCP, or point TEST_DATABASE_URL at a server." >&2
      exit 1
    }
  fi
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  # Trust local TCP connections for the test user, as CI's machines do.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [ -w "$hba" ] && ! grep -q "chat-tests" "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust # chat-tests\nhost all all ::1/128 trust # chat-tests' "$hba"
  fi
  echo "==> starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 || { echo "error: PostgreSQL did not start on 127.0.0.1:5432." >&2; exit 1; }
}

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then
    return 0
  fi
  apt_install chromium || {
    echo "error: the browser tests need Chromium at /usr/bin/chromium." >&2
    echo "       Install it (Debian/Ubuntu: sudo apt-get install chromium)." >&2
    exit 1
  }
}

# Debian's nginx for the scale-out stack's twin (scripts/stack.sh) and its tests. Only the
# binary is used: the twin runs it with a configuration of its own, as any user.
ensure_nginx() {
  if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    return 0
  fi
  apt_install nginx || {
    echo "error: the scale-out stack needs nginx (/usr/sbin/nginx)." >&2
    echo "       Install it (Debian/Ubuntu: sudo apt-get install nginx; macOS: brew install nginx)." >&2
    exit 1
  }
}

"""nginx's configuration for the scale-out stack: one template
(deploy/nginx/chat.conf.template) that docker-compose.yml mounts into the official image,
which renders it with envsubst, and that the twin (deploy/twin.py) renders with this for
Debian's nginx, wrapped in a main configuration of its own."""

import shutil
from collections.abc import Mapping
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "chat.conf.template"
PLACEHOLDERS = ("NGINX_UPSTREAM_SERVERS", "NGINX_LISTEN", "NGINX_TLS_PROXIES")

# What the official nginx image's /etc/nginx/nginx.conf puts around conf.d, with every
# path inside the stack's directory (nginx's -p prefix), so that any user can run it.
MAIN_CONF = """\
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log access.log;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include chat.conf;
}
"""


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with each `${NAME}` of PLACEHOLDERS replaced, as the nginx image's
    envsubst does with the variables compose sets; nginx's own `$variables` stay."""
    missing = set(PLACEHOLDERS) - set(values)
    if missing:
        raise ValueError(f"no value for {', '.join(sorted(missing))}")
    for name in PLACEHOLDERS:
        template = template.replace("${" + name + "}", values[name])
    return template


# As in docker-compose.yml: a worker that failed (refused a connection, or answered 503
# while draining) gets no requests for 5 s, then nginx tries it again.
SERVER_PARAMETERS = "max_fails=1 fail_timeout=5s"


def upstream_servers(ports: list[int]) -> str:
    return " ".join(f"server 127.0.0.1:{port} {SERVER_PARAMETERS};" for port in ports)


def tls_proxies(addresses: list[str]) -> str:
    """NGINX_TLS_PROXIES for TLS proxies at these addresses (or CIDR ranges): the only
    clients whose X-Forwarded-For and X-Forwarded-Proto nginx believes."""
    return " ".join(f"{address} 1;" for address in addresses)


def find_nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError(
            "nginx is not installed (Debian/Ubuntu: sudo apt-get install nginx; "
            "macOS: brew install nginx)."
        )
    return found

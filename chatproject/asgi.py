"""ASGI entry point, served by daphne: `daphne chatproject.asgi:application`."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application() does first

from streaming.middleware import ASGIHandler, WebSocketUser  # noqa: E402

# Django's handler, with Django's middleware run on the event loop (streaming/middleware.py).
django_asgi_app = ASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from streaming.drain import DrainGate  # noqa: E402
from streaming.routing import websocket_urlpatterns  # noqa: E402
from streaming.transports.backlog import SendProbe  # noqa: E402
from streaming.warmup import freeze_heap, open_connections_on_start, warm_up  # noqa: E402

# The first reply of this worker streams like the rest (streaming/warmup.py), and the
# collector leaves the startup heap alone.
warm_up()
freeze_heap()
open_connections_on_start()

# SendProbe: streams see how far their client is behind (streaming/transports/backlog.py).
# DrainGate: graceful restart on SIGTERM (streaming/drain.py).
application = SendProbe(
    DrainGate(
        ProtocolTypeRouter(
            {
                "http": django_asgi_app,
                "websocket": AllowedHostsOriginValidator(WebSocketUser(URLRouter(websocket_urlpatterns))),
            }
        )
    )
)

"""Error pages for what the views did not handle.

A request that finds the server out of capacity (no pooled database connection within
`DATABASE_POOL_TIMEOUT`) was not processed: it gets 503 with `Retry-After`, which the page
and the documented clients retry, instead of a 500. Anything else is a plain 500 (never a
traceback: that is `DEBUG` only).
"""

import logging
import sys

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import server_error
from psycopg_pool import PoolTimeout

from . import metrics

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
BUSY = "The server is busy; retry shortly."


def _out_of_capacity(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, PoolTimeout):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def server_error_page(request: HttpRequest) -> HttpResponse:
    """`handler500`: Django calls it while handling the exception."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OperationalError) and _out_of_capacity(exc):
        metrics.refused("no_capacity")
        logger.warning("no database connection free for %s %s: answered 503", request.method, request.path)
        response = JsonResponse({"error": BUSY}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return server_error(request)

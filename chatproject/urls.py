from django.contrib import admin
from django.urls import include, path

from streaming.accounts import throttle_failures

urlpatterns = [
    # The admin's log-in, under the same failure throttle as the site's.
    path("admin/login/", throttle_failures(admin.site.login)),
    path("admin/", admin.site.urls),
    path("", include("streaming.urls")),
]

# Out of capacity (no free database connection) is a 503 with Retry-After, not a 500.
handler500 = "streaming.errorpages.server_error_page"

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("streaming.urls")),
]

# Out of capacity (no free database connection) is a 503 with Retry-After, not a 500.
handler500 = "streaming.errorpages.server_error_page"

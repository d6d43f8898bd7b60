from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, register_converter
from django.views.generic import RedirectView

from config import views
from newsletter import dashboard
from newsletter.tracking import webhook_urls


class RowId:
    """``<id:name>``: a row's id as URLs carry it. At most 18 digits, so it always fits the
    database's 64-bit ids; a longer number is no URL of ours (404), never an overflow (500)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(RowId, "id")  # before the URL modules below are read

urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(dashboard.dashboard), name="admin-dashboard"),
    path(
        "admin/dashboard/charts/<slug:name>.svg",
        admin.site.admin_view(dashboard.chart),
        name="admin-dashboard-chart",
    ),
    path(
        "admin/import-papers/",
        admin.site.admin_view(dashboard.import_papers),
        name="admin-import-papers",
    ),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", RedirectView.as_view(url=static("newsletter/favicon.svg"))),
    path("anymail/", include(webhook_urls())),
    path("", include("newsletter.urls")),
]

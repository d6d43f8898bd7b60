from django.contrib import admin
from django.urls import include, path

from config import views
from newsletter import dashboard
from newsletter.tracking import webhook_urls

urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(dashboard.dashboard), name="admin-dashboard"),
    path(
        "admin/import-papers/",
        admin.site.admin_view(dashboard.import_papers),
        name="admin-import-papers",
    ),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("anymail/", include(webhook_urls())),
    path("", include("newsletter.urls")),
]

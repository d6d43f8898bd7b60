from django.urls import path

from newsletter import digest_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("manage/<str:token>/", views.manage, name="manage"),
    path("manage/<str:token>/export/", views.export, name="export"),
    path("manage/<str:token>/delete/", views.erase, name="erase"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("feed/<str:token>/", views.feed, name="feed"),
    # A digest's page, and its papers' links under the reader's own token for that digest
    # (emails.py builds these paths by hand, after reversing "digest_view"); the page's own
    # token, the one readers forward, opens the page only.
    path("digest/<str:token>/", digest_views.digest_view, name="digest_view"),
    path("digest/<str:token>/<id:paper_id>/more/", digest_views.feedback, {"vote": 1}),
    path("digest/<str:token>/<id:paper_id>/less/", digest_views.feedback, {"vote": -1}),
    path("digest/<str:token>/<id:paper_id>/<slug:kind>/", digest_views.follow, name="follow"),
]

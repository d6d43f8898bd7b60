from django.urls import path

from newsletter import digest_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("manage/<str:token>/", views.manage, name="manage"),
    path("manage/<str:token>/export/", views.export, name="export"),
    path("manage/<str:token>/delete/", views.erase, name="erase"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("digest/<str:token>/", digest_views.digest_view, name="digest_view"),
    path("feedback/<str:token>/", digest_views.feedback, name="feedback"),
    path("r/<str:token>/", digest_views.follow, name="follow"),
]

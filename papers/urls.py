from django.urls import path

from papers import views

urlpatterns = [
    path("", views.trending, name="trending"),
]

from django.urls import path

from webxample import error_view, views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("_error", error_view.error, name="error"),
]

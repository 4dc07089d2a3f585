from django.urls import path

from webxample import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("_error", views.error, name="error"),
]

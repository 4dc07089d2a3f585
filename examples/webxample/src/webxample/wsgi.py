"""The WSGI entry point: gunicorn webxample.wsgi:application."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webxample.settings")

application = get_wsgi_application()

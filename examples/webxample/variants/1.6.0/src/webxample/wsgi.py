"""The WSGI entry point: gunicorn webxample.wsgi:application.

1.6.0 boots slowly on purpose: 8 s before the app is ready (variants/1.6.0/VARIANT.md).
"""

import os
import time

from django.core.wsgi import get_wsgi_application

BOOT_SECONDS = 8
time.sleep(BOOT_SECONDS)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webxample.settings")

application = get_wsgi_application()

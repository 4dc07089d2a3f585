"""The `webxample` command: Django's management commands with the app's settings."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webxample.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A missing or bad environment variable: name it, without a traceback.
        sys.exit(f"webxample: {exc}")


if __name__ == "__main__":
    main()

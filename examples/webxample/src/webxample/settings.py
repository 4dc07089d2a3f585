"""webxample's settings, all read from the environment (twelve-factor: config lives in the
environment, not in the code, so one wheel runs unchanged in every environment).

The variables are listed in README.md. A required one that is missing stops the app at
start-up with an ImproperlyConfigured error that names it.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from webxample import __version__

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def env(name, default=None):
    """The variable's value, or default when it is unset or empty (`NAME=` in an env file)."""
    return os.environ.get(name, "").strip() or default


def env_list(name):
    """A comma-separated variable as a list, blanks dropped."""
    return [item.strip() for item in env(name, "").split(",") if item.strip()]


def env_bool(name, default=False):
    value = env(name)
    if value is None:
        return default
    if value.lower() in TRUE | FALSE:
        return value.lower() in TRUE
    raise ImproperlyConfigured(f"{name} must be one of {sorted(TRUE | FALSE)}, not {value!r}")


def env_required(name, hint):
    value = env(name)
    if value is None:
        raise ImproperlyConfigured(f"{name} is not set: {hint}")
    return value


SECRET_KEY = env_required("SECRET_KEY", "set it to a long random string in the app's environment")
DEBUG = env_bool("DEBUG")
# Django's host check stays on: the deploy lists every name it reaches the app by.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# nginx terminates TLS and says so in X-Forwarded-Proto (it must set, not pass on, the header).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if env("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(env("DATABASE_URL"), conn_max_age=60, conn_health_checks=True)}
elif env("WEBXAMPLE_DATA_DIR"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": Path(env("WEBXAMPLE_DATA_DIR")) / "db.sqlite3",
            # Several gunicorn workers write the counter: WAL lets readers go on during a
            # write, and IMMEDIATE transactions wait for the lock instead of failing.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
else:
    raise ImproperlyConfigured(
        "neither DATABASE_URL nor WEBXAMPLE_DATA_DIR is set: set DATABASE_URL to a database URL, "
        "or WEBXAMPLE_DATA_DIR to the app's data directory (SQLite at db.sqlite3 in it)"
    )

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "webxample",
]

MIDDLEWARE = [
    "webxample.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webxample.urls"
WSGI_APPLICATION = "webxample.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# collectstatic writes here; the deploy points it at the release's static/ directory,
# which nginx serves at STATIC_URL. Unset, collectstatic refuses to run.
STATIC_ROOT = env("STATIC_ROOT")
STATIC_URL = env("STATIC_URL", "/static/")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# Logs are an event stream on stdout (the supervisor collects it). StreamHandler flushes
# after every record, so nothing waits in a buffer. Django's own loggers go the same way.
LOG_LEVEL = env("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "datefmt": "%Y-%m-%d %H:%M:%S %z",
        },
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    # No handlers of their own (Django's default prints to stderr when DEBUG): they reach root.
    "loggers": {"django": {"handlers": [], "level": LOG_LEVEL, "propagate": True}},
}

SENTRY_DSN = env("SENTRY_DSN")
if SENTRY_DSN:
    # Imported only when configured: without a DSN the SDK is never loaded.
    import sentry_sdk

    # The Django integration turns itself on; SENTRY_ENVIRONMENT is read by the SDK. The
    # release is the one webdeploy names (SENTRY_RELEASE=<app>@<version>: two apps may run
    # this package), else this package's own.
    sentry_sdk.init(dsn=SENTRY_DSN, release=env("SENTRY_RELEASE") or f"webxample@{__version__}",
                    send_default_pii=False)

# GET /_error raises an exception (a 500), to check that errors reach error tracking; off
# unless asked for, so that nobody can fill a real project with test errors.
ERROR_VIEW = env_bool("WEBXAMPLE_ERROR_VIEW")

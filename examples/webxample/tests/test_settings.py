"""Settings come from the environment: each case imports them in a fresh interpreter."""

import json
import sys

import pytest

from tests.support import app_env, run

# Loads the settings the way the app does and reports what they came to.
PROBE = r"""
import json, logging, sys
from django.conf import settings
from django.utils.log import configure_logging
# Not django.setup(): models would load the database driver, which only a server needs.
configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
logging.getLogger("webxample.probe").info("probe log line")
db = settings.DATABASES["default"]
report = {
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "CSRF_TRUSTED_ORIGINS": settings.CSRF_TRUSTED_ORIGINS,
    "DATABASE": {k: str(db.get(k)) for k in ("ENGINE", "NAME", "HOST", "PORT", "USER")},
    "STATIC_ROOT": settings.STATIC_ROOT,
    "STATIC_URL": settings.STATIC_URL,
    "SECURE_PROXY_SSL_HEADER": list(settings.SECURE_PROXY_SSL_HEADER),
    "sentry_loaded": "sentry_sdk" in sys.modules,
}
if report["sentry_loaded"]:
    import sentry_sdk
    client = sentry_sdk.get_client()
    report["sentry"] = {"active": client.is_active(), "dsn": client.dsn, "release": client.options["release"]}
print("PROBE " + json.dumps(report))
"""

BASE = {"DJANGO_SETTINGS_MODULE": "webxample.settings", "SECRET_KEY": "k"}


def probe(tmp_path, check=True, **variables):
    result = run([sys.executable, "-c", PROBE], env=app_env(**variables), cwd=tmp_path, check=check)
    if not check:
        return result
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE ")]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0].removeprefix("PROBE ")), result


def test_sqlite_in_the_data_dir_by_default(tmp_path):
    report, _ = probe(tmp_path, **BASE, WEBXAMPLE_DATA_DIR=tmp_path)
    assert report["DATABASE"]["ENGINE"] == "django.db.backends.sqlite3"
    assert report["DATABASE"]["NAME"] == str(tmp_path / "db.sqlite3")


def test_database_url_wins_over_the_data_dir(tmp_path):
    report, _ = probe(tmp_path, **BASE, WEBXAMPLE_DATA_DIR=tmp_path,
                      DATABASE_URL="postgres://app:pw@db.example:5433/webxample")
    assert report["DATABASE"] == {"ENGINE": "django.db.backends.postgresql", "NAME": "webxample",
                                  "HOST": "db.example", "PORT": "5433", "USER": "app"}


def test_defaults(tmp_path):
    report, _ = probe(tmp_path, **BASE, WEBXAMPLE_DATA_DIR=tmp_path)
    assert report["DEBUG"] is False
    assert report["ALLOWED_HOSTS"] == []
    assert report["CSRF_TRUSTED_ORIGINS"] == []
    assert report["STATIC_ROOT"] is None
    assert report["STATIC_URL"] == "/static/"
    assert report["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_lists_flags_and_paths_from_the_environment(tmp_path):
    report, _ = probe(tmp_path, **BASE, WEBXAMPLE_DATA_DIR=tmp_path, DEBUG="true",
                      ALLOWED_HOSTS=" web.example, 127.0.0.1 ,,localhost",
                      CSRF_TRUSTED_ORIGINS="https://web.example", STATIC_ROOT=tmp_path / "static")
    assert report["DEBUG"] is True
    assert report["ALLOWED_HOSTS"] == ["web.example", "127.0.0.1", "localhost"]
    assert report["CSRF_TRUSTED_ORIGINS"] == ["https://web.example"]
    assert report["STATIC_ROOT"] == str(tmp_path / "static")


@pytest.mark.parametrize("missing, named", [
    ({"SECRET_KEY": ""}, ["SECRET_KEY"]),
    ({"WEBXAMPLE_DATA_DIR": ""}, ["DATABASE_URL", "WEBXAMPLE_DATA_DIR"]),
])
def test_a_missing_required_variable_is_named(tmp_path, missing, named):
    variables = {**BASE, "WEBXAMPLE_DATA_DIR": tmp_path, **missing}  # empty counts as unset
    result = probe(tmp_path, check=False, **variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    for name in named:
        assert name in result.stderr.splitlines()[-1]


def test_a_malformed_flag_is_refused(tmp_path):
    result = probe(tmp_path, check=False, **BASE, WEBXAMPLE_DATA_DIR=tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr


def test_logs_go_to_stdout(tmp_path):
    _, result = probe(tmp_path, **BASE, WEBXAMPLE_DATA_DIR=tmp_path)
    assert "[INFO] webxample.probe: probe log line" in result.stdout
    assert "probe log line" not in result.stderr


def test_sentry_is_not_even_imported_without_a_dsn(tmp_path):
    report, _ = probe(tmp_path, **BASE, WEBXAMPLE_DATA_DIR=tmp_path)
    assert report["sentry_loaded"] is False


def test_sentry_is_initialised_with_a_dsn(tmp_path):
    dsn = "https://publickey@sentry.invalid/42"
    report, _ = probe(tmp_path, **BASE, WEBXAMPLE_DATA_DIR=tmp_path, SENTRY_DSN=dsn)
    assert report["sentry_loaded"] is True
    assert report["sentry"]["active"] is True
    assert report["sentry"]["dsn"] == dsn
    assert report["sentry"]["release"].startswith("webxample@")


def test_sentry_release_is_the_one_webdeploy_names(tmp_path):
    report, _ = probe(tmp_path, **BASE, WEBXAMPLE_DATA_DIR=tmp_path, SENTRY_DSN="https://publickey@sentry.invalid/42",
                      SENTRY_RELEASE="shop@1.4.0")
    assert report["sentry"]["release"] == "shop@1.4.0"

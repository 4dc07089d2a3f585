"""The pages, in process with Django's test client (pytest-django's test database)."""

import logging
from importlib.metadata import version

import pytest
from django.core.management import call_command
from django.db import connection

from webxample import __version__
from webxample.models import Counter

pytestmark = pytest.mark.django_db


def test_the_version_shown_is_the_installed_one():
    assert __version__ == version("webxample")


def test_home_shows_the_version_and_links_the_stylesheet(client):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f"Version <strong>{__version__}</strong>" in body
    assert 'href="/static/webxample/style.css"' in body


def test_home_counts_its_visits(client):
    client.get("/")
    response = client.get("/")
    assert "visited 2 times" in response.content.decode()
    assert Counter.objects.get(name="home").value == 2


def test_healthz_reports_version_and_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    assert response.json() == {"version": __version__, "database": "ok"}


def test_healthz_only_reads(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_healthz_fails_with_an_unapplied_migration(client):
    call_command("migrate", "webxample", "zero", verbosity=0)
    try:
        response = client.get("/healthz")
    finally:
        call_command("migrate", "webxample", verbosity=0)
    assert response.status_code == 503
    assert response.json() == {"version": __version__, "database": "error",
                               "error": "PendingMigrations: unapplied migrations: webxample.0001_initial"}


@pytest.mark.django_db(transaction=True)
def test_healthz_fails_when_the_table_is_gone(client):
    # Migrations say applied, the table is missing: a broken database.
    with connection.schema_editor() as editor:
        editor.delete_model(Counter)
    try:
        response = client.get("/healthz")
    finally:
        with connection.schema_editor() as editor:
            editor.create_model(Counter)
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "error"
    assert body["error"].startswith("OperationalError: no such table")


def test_models_and_migrations_agree():
    # A model change without its migration would only fail once served (see variant 1.3.0).
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_unknown_hosts_are_refused(client, settings):
    settings.ALLOWED_HOSTS = ["web.example"]
    assert client.get("/healthz", HTTP_HOST="web.example").status_code == 200
    assert client.get("/healthz", HTTP_HOST="evil.example").status_code == 400
    assert client.get("/healthz", HTTP_HOST="localhost").status_code == 400


def test_https_is_taken_from_the_proxy_header(rf):
    assert rf.get("/", HTTP_X_FORWARDED_PROTO="https").is_secure()
    assert not rf.get("/", HTTP_X_FORWARDED_PROTO="http").is_secure()


def test_each_request_is_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="webxample.requests"):
        client.get("/healthz?probe=1")
    assert any(r.name == "webxample.requests" and r.getMessage().startswith("GET /healthz?probe=1 200 ")
               for r in caplog.records)


def test_the_error_page_is_off_by_default(client):
    assert client.get("/_error").status_code == 404


def test_the_error_page_raises_when_asked_for(client, settings):
    from webxample.error_view import DeliberateError

    settings.ERROR_VIEW = True
    with pytest.raises(DeliberateError, match=f"webxample {__version__}: deliberate error from GET /_error"):
        client.get("/_error")

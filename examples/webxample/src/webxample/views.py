import logging

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from webxample import __version__
from webxample.models import Counter

logger = logging.getLogger(__name__)


def record_visit():
    """Count one visit of the home page; return the counter as stored now."""
    counter, _ = Counter.objects.get_or_create(name="home")
    # An UPDATE with F(): concurrent workers never lose a visit.
    Counter.objects.filter(pk=counter.pk).update(value=F("value") + 1)
    counter.refresh_from_db()
    return counter


@require_safe
def home(request):
    counter = record_visit()
    return render(request, "webxample/index.html", {"version": __version__, "visits": counter.value})


class PendingMigrations(Exception):
    pass


def check_database():
    """Raise unless the database answers with the schema this release expects."""
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise PendingMigrations("unapplied migrations: " + ", ".join(f"{m.app_label}.{m.name}" for m, _ in pending))
    # Selects every column the models know, so a table behind the code fails here too.
    list(Counter.objects.all()[:1])


@never_cache
@require_safe
def healthz(request):
    """200 {"version", "database": "ok"} when this release can serve; 503 with the error otherwise."""
    try:
        check_database()
    except Exception as exc:  # whatever breaks (driver, schema, connection), answer 503
        error = f"{type(exc).__name__}: {exc}"
        logger.error("healthz: %s", error)
        return JsonResponse({"version": __version__, "database": "error", "error": error}, status=503)
    return JsonResponse({"version": __version__, "database": "ok"})

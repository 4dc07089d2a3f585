"""GET /_error: a 500 on purpose, to check that errors reach error tracking. Off unless
WEBXAMPLE_ERROR_VIEW is true (settings.ERROR_VIEW); a 404 otherwise. Its own module, so
that the release variants (which replace views.py) serve it unchanged."""

from django.conf import settings
from django.http import Http404
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from webxample import __version__


class DeliberateError(Exception):
    """What GET /_error raises."""


@never_cache
@require_safe
def error(request):
    """A 500 on purpose (settings.ERROR_VIEW), to check that errors reach error tracking."""
    if not settings.ERROR_VIEW:
        raise Http404("no such page")
    raise DeliberateError(f"webxample {__version__}: deliberate error from GET /_error")

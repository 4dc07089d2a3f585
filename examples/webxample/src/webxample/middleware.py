import logging
import time

logger = logging.getLogger("webxample.requests")


class RequestLogMiddleware:
    """One log line per request the app answered (gunicorn's access log has its own)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.monotonic()
        response = self.get_response(request)
        logger.info("%s %s %s %.1fms", request.method, request.get_full_path(), response.status_code,
                    (time.monotonic() - start) * 1000)
        return response

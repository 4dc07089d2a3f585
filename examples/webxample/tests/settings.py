"""Settings for the app's tests: webxample.settings, fed the environment it requires."""

import os

from tests.support import APP_VARS

for name in APP_VARS:
    os.environ.pop(name, None)
os.environ["SECRET_KEY"] = "tests-only-not-secret"
# pytest-django runs the tests on an in-memory copy of this SQLite database: nothing is
# ever written here, and a test that reached the real file would fail loudly.
os.environ["WEBXAMPLE_DATA_DIR"] = "/nonexistent/webxample-tests"

from webxample.settings import *  # noqa: E402,F403

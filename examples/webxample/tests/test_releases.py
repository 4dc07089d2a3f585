"""The release check: build every variant with build-releases, install the wheels into a
throwaway venv and run them as the deploy does (webxample migrate/collectstatic, then
real gunicorn on a socket it inherits, as under Circus), over HTTP."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import APP_DIR, app_env, run

pytestmark = pytest.mark.releases

VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0", "1.7.0"]
# The repository's toolchain venv has `build`; WEBXAMPLE_BUILD_PYTHON picks another.
BUILD_PYTHON = os.environ.get("WEBXAMPLE_BUILD_PYTHON", str(APP_DIR.parents[1] / ".venv/bin/python"))
STYLE = APP_DIR / "src/webxample/static/webxample/style.css"


@pytest.fixture(scope="session")
def wheels(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("wheels")
    result = run([APP_DIR / "build-releases", outdir], env={**os.environ, "PYTHON": BUILD_PYTHON})
    printed = [Path(line) for line in result.stdout.split()]
    assert [p.name for p in printed] == [f"webxample-{v}-py3-none-any.whl" for v in VERSIONS]
    assert all(p.parent == outdir and p.is_file() for p in printed)
    return dict(zip(VERSIONS, printed))


class Release:
    """One throwaway venv; install() swaps the webxample wheel in it."""

    def __init__(self, venv, wheels):
        self.venv, self.wheels = venv, wheels

    def pip(self, *args):
        # The test venv's pip drives the release venv (which has none of its own).
        run([sys.executable, "-m", "pip", "--python", self.venv / "bin/python", "--disable-pip-version-check",
             *args], env=os.environ)

    def install(self, version):
        self.pip("install", "-q", "--no-deps", "--force-reinstall", self.wheels[version])

    def run(self, *args, env, check=True):
        return run([self.venv / "bin" / args[0], *args[1:]], env, check=check)

    def applied_migrations(self, env):
        shown = self.run("webxample", "showmigrations", "webxample", env=env).stdout
        return [line.split()[-1] for line in shown.splitlines() if line.strip().startswith("[X]")]

    @contextmanager
    def serve(self, env, log, *extra):
        """gunicorn on a socket bound here (as Circus does): requests wait until it is up."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.set_inheritable(True)
        fd, port = listener.fileno(), listener.getsockname()[1]
        with open(log, "ab") as out:
            server = subprocess.Popen(
                [self.venv / "bin/gunicorn", "--bind", f"fd://{fd}", "--workers", "2", "--no-control-socket",
                 "--access-logfile", "-", *extra, "webxample.wsgi:application"],
                env=env, stdout=out, stderr=subprocess.STDOUT, pass_fds=[fd])
        # gunicorn holds the socket now; without our copy, its death refuses connections.
        listener.close()
        self.server = server
        try:
            yield HTTP(f"http://127.0.0.1:{port}", log)
        finally:
            server.terminate()
            server.wait(timeout=60)


class HTTP:
    def __init__(self, base, log):
        self.base, self.log = base, log

    def get(self, path, host=None):
        """(status, body) of a GET; fails with gunicorn's log when nothing answers."""
        request = urllib.request.Request(self.base + path, headers={"Host": host} if host else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            raise AssertionError(f"GET {path}: {error}\ngunicorn log:\n{Path(self.log).read_text()}") from error


@pytest.fixture(scope="session")
def release(tmp_path_factory, wheels):
    venv = tmp_path_factory.mktemp("release-venv")
    run([sys.executable, "-m", "venv", "--without-pip", venv], env=os.environ)
    r = Release(venv, wheels)
    # The wheel's own dependency pins, held to the lock: they must agree.
    r.pip("install", "-q", "-c", APP_DIR / "requirements.lock", wheels["1.0.0"])
    r.pip("check")
    return r


def deploy_env(tmp_path, name):
    """A release's environment: its own static dir, the shared data dir of the app."""
    (tmp_path / "data").mkdir(exist_ok=True)
    return app_env(SECRET_KEY="release-check", WEBXAMPLE_DATA_DIR=tmp_path / "data",
                   STATIC_ROOT=tmp_path / name / "static", ALLOWED_HOSTS="127.0.0.1,localhost")


def test_unknown_variant_is_refused(tmp_path):
    result = run([APP_DIR / "build-releases", tmp_path, "9.9.9"], env={**os.environ, "PYTHON": BUILD_PYTHON},
                 check=False)
    assert result.returncode != 0
    assert "no variant for 9.9.9" in result.stderr
    assert not list(tmp_path.glob("*.whl"))


@pytest.mark.parametrize("version", VERSIONS)
def test_wheel_carries_what_the_deploy_needs(wheels, version):
    with zipfile.ZipFile(wheels[version]) as wheel:
        names = set(wheel.namelist())
        info = f"webxample-{version}.dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        assert wheel.read("webxample/static/webxample/style.css") == STYLE.read_bytes()
    assert {"webxample/wsgi.py", "webxample/templates/webxample/index.html",
            "webxample/migrations/0001_initial.py"} <= names
    assert f"Version: {version}\n" in metadata
    for pin in ("Django==5.2.19", "gunicorn==27.0.1", "dj-database-url==3.1.2", "sentry-sdk==2.75.0"):
        assert f"Requires-Dist: {pin}\n" in metadata
    assert "webxample = webxample.manage:main" in entry_points
    # Nothing of the tests or the variants leaks into a release.
    assert not any(n.startswith(("tests/", "variants/")) or n.endswith("VARIANT.md") for n in names)


def test_1_0_0_upgrade_to_1_1_0_and_roll_back(release, tmp_path):
    log = tmp_path / "gunicorn.log"
    env = deploy_env(tmp_path, "1.0.0")
    release.install("1.0.0")
    release.run("webxample", "check", env=env)
    release.run("webxample", "migrate", "--noinput", env=env)
    assert release.applied_migrations(env) == ["0001_initial"]
    release.run("webxample", "collectstatic", "--noinput", env=env)
    assert (tmp_path / "1.0.0/static/webxample/style.css").read_bytes() == STYLE.read_bytes()
    with release.serve(env, log) as http:
        status, page_1_0 = http.get("/")
        assert status == 200
        assert "Version <strong>1.0.0</strong>" in page_1_0
        assert "visited 1 time." in page_1_0
        status, body = http.get("/healthz")
        assert (status, json.loads(body)) == (200, {"version": "1.0.0", "database": "ok"})
        assert http.get("/healthz", host="localhost")[0] == 200
        # Django's host check is on: a name the deploy did not list is refused.
        assert http.get("/healthz", host="evil.example")[0] == 400

    # 1.1.0 on the same data dir: a second migration, a visibly different page.
    env = deploy_env(tmp_path, "1.1.0")
    release.install("1.1.0")
    release.run("webxample", "check", env=env)
    assert "[ ] 0002_counter_last_visit" in release.run("webxample", "showmigrations", env=env).stdout
    release.run("webxample", "migrate", "--noinput", env=env)
    assert release.applied_migrations(env) == ["0001_initial", "0002_counter_last_visit"]
    release.run("webxample", "collectstatic", "--noinput", env=env)
    with release.serve(env, log) as http:
        status, page_1_1 = http.get("/")
        assert status == 200
        assert "Version <strong>1.1.0</strong>" in page_1_1
        assert "New in 1.1.0" in page_1_1 and "New in 1.1.0" not in page_1_0
        assert "visited 2 times." in page_1_1  # the data dir outlives the release
        status, body = http.get("/healthz")
        assert (status, json.loads(body)) == (200, {"version": "1.1.0", "database": "ok"})

    # Rollback: 1.0.0 again, the database left as 1.1.0 migrated it.
    env = deploy_env(tmp_path, "1.0.0")
    release.install("1.0.0")
    with release.serve(env, log) as http:
        status, body = http.get("/healthz")
        assert (status, json.loads(body)) == (200, {"version": "1.0.0", "database": "ok"})
        status, page = http.get("/")
        assert status == 200 and "Version <strong>1.0.0</strong>" in page and "visited 3 times." in page


def test_1_2_0_fails_at_import(release, tmp_path):
    env = deploy_env(tmp_path, "1.2.0")
    release.install("1.2.0")
    result = release.run("python", "-c", "import webxample.wsgi", env=env, check=False)
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'webxample.feature_flags'" in result.stderr
    assert release.run("webxample", "check", env=env, check=False).returncode != 0


def test_1_3_0_fails_only_once_it_serves(release, tmp_path):
    env = deploy_env(tmp_path, "1.3.0")
    release.install("1.3.0")
    release.run("webxample", "check", env=env)
    release.run("webxample", "migrate", "--noinput", env=env)
    release.run("webxample", "collectstatic", "--noinput", env=env)
    with release.serve(env, tmp_path / "gunicorn.log") as http:
        status, body = http.get("/healthz")
        assert status == 503
        health = json.loads(body)
        assert health["version"] == "1.3.0" and health["database"] == "error"
        assert health["error"].startswith("OperationalError: no such column")
        assert http.get("/")[0] == 500


def test_1_5_0_is_healthy_but_its_home_page_fails(release, tmp_path):
    env = deploy_env(tmp_path, "1.5.0")
    release.install("1.5.0")
    release.run("webxample", "check", env=env)
    release.run("webxample", "migrate", "--noinput", env=env)
    release.run("webxample", "collectstatic", "--noinput", env=env)
    with release.serve(env, tmp_path / "gunicorn.log") as http:
        status, body = http.get("/healthz")
        assert (status, json.loads(body)) == (200, {"version": "1.5.0", "database": "ok"})
        assert http.get("/")[0] == 500
    assert "NoReverseMatch: Reverse for 'about' not found." in (tmp_path / "gunicorn.log").read_text()


def test_1_6_0_boots_slowly_and_then_serves(release, tmp_path):
    env = deploy_env(tmp_path, "1.6.0")
    release.install("1.6.0")
    release.run("webxample", "check", env=env)
    started = time.monotonic()
    release.run("python", "-c", "import webxample.wsgi", env=env)
    # A lower bound that the sleep guarantees, not a performance threshold.
    assert time.monotonic() - started >= 8
    release.run("webxample", "migrate", "--noinput", env=env)
    with release.serve(env, tmp_path / "gunicorn.log") as http:
        status, body = http.get("/healthz")
        assert (status, json.loads(body)) == (200, {"version": "1.6.0", "database": "ok"})
        assert http.get("/")[0] == 200


def test_1_7_0_passes_a_few_requests_then_each_worker_answers_500(release, tmp_path):
    env = deploy_env(tmp_path, "1.7.0")
    release.install("1.7.0")
    release.run("webxample", "check", env=env)
    release.run("webxample", "migrate", "--noinput", env=env)
    release.run("webxample", "collectstatic", "--noinput", env=env)
    log = tmp_path / "gunicorn.log"
    # One worker, as the deploy's canary runs it: every request reaches the same process.
    with release.serve(env, log, "--workers", "1") as http:
        # What the canary asks (health path, smoke path /), and more, up to 20 requests.
        status, body = http.get("/healthz")
        assert (status, json.loads(body)) == (200, {"version": "1.7.0", "database": "ok"})
        for _ in range(19):
            status, page = http.get("/")
            assert status == 200 and "Version <strong>1.7.0</strong>" in page
        # The 21st request and every one after: 500, on both paths.
        assert [http.get(path)[0] for path in ("/", "/healthz", "/", "/healthz")] == [500] * 4
    assert "WornOut: worker" in log.read_text()
    assert "served 20 requests and fails from then on (request 21)" in log.read_text()


def test_gunicorn_workers_mark_themselves_ready_with_webdeploys_hooks(release, tmp_path):
    # The settings file every app's gunicorn loads (roles/webapp/files/gunicorn_hooks.py):
    # once a worker answers, it has left <master pid>.<worker pid> in WEBDEPLOY_READY_DIR;
    # when gunicorn stops, it removes them.
    ready = tmp_path / "ready"
    ready.mkdir()
    env = dict(deploy_env(tmp_path, "1.0.0"), WEBDEPLOY_READY_DIR=str(ready))
    release.install("1.0.0")
    release.run("webxample", "migrate", "--noinput", env=env)
    hooks = APP_DIR.parent.parent / "roles/webapp/files/gunicorn_hooks.py"
    with release.serve(env, tmp_path / "gunicorn.log", "--config", str(hooks)) as http:
        assert http.get("/healthz")[0] == 200  # one worker has booted; the other may still be
        for _ in range(300):
            markers = sorted(p.name for p in ready.iterdir())
            if len(markers) == 2:
                break
            time.sleep(0.1)
        assert len(markers) == 2, markers
        for name in markers:
            master, worker = name.split(".")
            assert master == str(release.server.pid), markers
            parent = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1]
            assert parent == master, f"{name}: worker {worker} is not a child of {master}"
    assert sorted(ready.iterdir()) == [], "the master removed its markers as it stopped"

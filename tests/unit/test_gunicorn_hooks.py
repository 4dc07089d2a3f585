"""roles/webapp/files/gunicorn_hooks.py, the settings file every app's gunicorn loads:
the release a process runs from, named from its virtualenv's path for Sentry
(SENTRY_RELEASE=<app>@<version>), through the `current` link or not."""

import importlib.util
import os
import subprocess
import sys

from sandbox_support import PROJECT

HOOKS = PROJECT / "roles/webapp/files/gunicorn_hooks.py"
spec = importlib.util.spec_from_file_location("gunicorn_hooks", HOOKS)
hooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hooks)


def app_home(tmp_path):
    home = tmp_path / "srv/apps/shop"
    (home / "releases/1.4.0/venv").mkdir(parents=True)
    (home / "current").symlink_to("releases/1.4.0")
    return home


def test_the_release_is_named_from_the_virtualenv(tmp_path):
    home = app_home(tmp_path)
    assert hooks.release_name(str(home / "releases/1.4.0/venv")) == "shop@1.4.0"
    # Circus starts <home>/current/venv/bin/gunicorn: the link is followed.
    assert hooks.release_name(str(home / "current/venv")) == "shop@1.4.0"


def test_other_paths_name_no_release(tmp_path):
    home = app_home(tmp_path)
    assert hooks.release_name("/usr") == ""
    assert hooks.release_name(str(home / "releases/1.4.0")) == ""
    assert hooks.release_name(str(tmp_path)) == ""


def run_hooks(prefix, env):
    """SENTRY_RELEASE after loading the hooks file in a Python whose sys.prefix is `prefix`."""
    code = ("import os, runpy, sys; sys.prefix = sys.argv[1]; runpy.run_path(sys.argv[2]); "
            "print(os.environ.get('SENTRY_RELEASE', '-'))")
    return subprocess.run([sys.executable, "-c", code, prefix, str(HOOKS)], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_loading_the_file_sets_sentry_release_unless_set(tmp_path):
    home = app_home(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_RELEASE"}
    assert run_hooks(str(home / "current/venv"), env) == "shop@1.4.0"
    assert run_hooks(str(home / "current/venv"), {**env, "SENTRY_RELEASE": "shop@pinned"}) == "shop@pinned"
    assert run_hooks("/usr", env) == "-"

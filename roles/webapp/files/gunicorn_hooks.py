# gunicorn settings file that every app's gunicorn loads (--config): readiness markers.
# Installed by the Ansible role webapp; changes here are overwritten.
#
# A worker is ready once it has loaded the app and is about to accept connections; the
# release role's rollout replaces the old processes only when every worker of the new
# ones is ready (roles/release/library/release_rollout.py). gunicorn itself tells nobody:
# its master's "ready" comes before any worker exists. Each ready worker leaves a file
# <master pid>.<worker pid> in $WEBDEPLOY_READY_DIR; the master removes it when the
# worker exits, and its own ones when it stops. A marker left by a killed master names
# pids that no longer run, which the rollout ignores.
#
# Only hooks live here: every other setting comes from the command line (gunicorn_args),
# which wins over this file. A marker that cannot be written is logged, never fatal: the
# worker serves, and the deploy, not seeing it ready, rolls back with the reason.
import os
import sys

_ready_dir = os.environ.get("WEBDEPLOY_READY_DIR", "")


def release_name(prefix):
    """'<app>@<version>' of the release whose virtualenv `prefix` is
    (<root>/<app>/releases/<version>/venv, reached through `current` or not); '' for any
    other path."""
    venv = os.path.realpath(prefix)
    release = os.path.dirname(venv)
    releases = os.path.dirname(release)
    if os.path.basename(venv) != "venv" or os.path.basename(releases) != "releases":
        return ""
    return f"{os.path.basename(os.path.dirname(releases))}@{os.path.basename(release)}"


# The release this process runs from, for Sentry's SDK (which reads SENTRY_RELEASE) and
# anything else that asks: the app's env file cannot say it, since it outlives releases.
# This file is read before the app is imported, in the canary as in the served processes.
# A value in the env file wins.
if "SENTRY_RELEASE" not in os.environ and release_name(sys.prefix):
    os.environ["SENTRY_RELEASE"] = release_name(sys.prefix)


def _marker(master, worker):
    return os.path.join(_ready_dir, f"{master}.{worker}")


def post_worker_init(worker):
    # In the worker: the app is loaded; the accept loop starts when this returns.
    if not _ready_dir:
        return
    try:
        with open(_marker(worker.ppid, worker.pid), "w", encoding="ascii"):
            pass
    except OSError as error:
        worker.log.warning("webdeploy: cannot mark this worker ready: %s", error)


def _forget(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def child_exit(server, worker):
    # In the master, once a worker has exited.
    if _ready_dir:
        _forget(_marker(server.pid, worker.pid))


def on_exit(server):
    # In the master, as it stops.
    if not _ready_dir:
        return
    try:
        names = os.listdir(_ready_dir)
    except OSError:
        return
    for name in names:
        if name.startswith(f"{server.pid}."):
            _forget(os.path.join(_ready_dir, name))

"""Helpers shared by the app's tests."""

import os
import subprocess
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[1]
# The environment variables webxample reads (README.md lists them).
APP_VARS = (
    "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "WEBXAMPLE_DATA_DIR",
    "STATIC_ROOT", "STATIC_URL", "LOG_LEVEL", "SENTRY_DSN", "SENTRY_ENVIRONMENT", "SENTRY_RELEASE", "DJANGO_SETTINGS_MODULE",
    "WEBXAMPLE_ERROR_VIEW",
)


def app_env(**variables):
    """This process's environment without any of the app's variables, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if k not in APP_VARS}
    env.update({k: str(v) for k, v in variables.items()})
    return env


def run(args, env, cwd=None, check=True):
    """Run a command; on an unexpected exit status, fail with its output."""
    result = subprocess.run([str(a) for a in args], env=env, cwd=cwd, text=True, capture_output=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def venv_bin(name):
    """A command installed next to this interpreter (the test venv's webxample, ...)."""
    return Path(sys.executable).parent / name

"""The `webxample` command and the WSGI module, as the deploy runs them (subprocesses)."""

import sys

from tests.support import APP_DIR, app_env, run, venv_bin


def env_for(tmp_path, **extra):
    # No DJANGO_SETTINGS_MODULE: the command and the WSGI module must default it.
    return app_env(**{"SECRET_KEY": "k", "WEBXAMPLE_DATA_DIR": tmp_path, "STATIC_ROOT": tmp_path / "static", **extra})


def test_check_passes(tmp_path):
    result = run([venv_bin("webxample"), "check"], env_for(tmp_path))
    assert "no issues" in result.stdout


def test_python_m_webxample_is_the_same_command(tmp_path):
    assert "no issues" in run([sys.executable, "-m", "webxample", "check"], env_for(tmp_path)).stdout


def test_a_missing_variable_is_named_without_a_traceback(tmp_path):
    result = run([venv_bin("webxample"), "check"], env_for(tmp_path, SECRET_KEY=""), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("webxample: SECRET_KEY is not set")
    assert "Traceback" not in result.stderr


def test_migrate_creates_the_database_in_the_data_dir(tmp_path):
    env = env_for(tmp_path)
    run([venv_bin("webxample"), "migrate", "--noinput"], env)
    assert (tmp_path / "db.sqlite3").is_file()
    shown = run([venv_bin("webxample"), "showmigrations", "webxample"], env).stdout
    assert "[X] 0001_initial" in shown


def test_collectstatic_writes_to_static_root(tmp_path):
    run([venv_bin("webxample"), "collectstatic", "--noinput"], env_for(tmp_path))
    collected = tmp_path / "static/webxample/style.css"
    assert collected.read_text() == (APP_DIR / "src/webxample/static/webxample/style.css").read_text()


def test_wsgi_module_loads_with_the_default_settings(tmp_path):
    code = "import webxample.wsgi as w, django.conf as c; print(callable(w.application), c.settings.SETTINGS_MODULE)"
    assert run([sys.executable, "-c", code], env_for(tmp_path), cwd=tmp_path).stdout.split() == [
        "True", "webxample.settings"]

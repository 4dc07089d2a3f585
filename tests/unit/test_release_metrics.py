"""The release role's deploy metrics (roles/release/library/release_metrics.py): the node
exporter's textfile, written by a rename, with the release that serves after the run,
the run's outcome, and nothing written on a host without the textfile directory."""

import os

from release_modules import load, run_module

metrics_module = load("release_metrics")


def app_home(tmp_path, current="1.1.0"):
    home = tmp_path / "webxample"
    (home / "releases" / "1.0.0").mkdir(parents=True)
    (home / "releases" / "1.1.0").mkdir()
    if current:
        (home / "current").symlink_to(f"releases/{current}")
    return home


def write(tmp_path, home, check_mode=False, **extra):
    args = {"dir": str(tmp_path / "textfile"), "home": str(home), "app": "webxample", "action": "deploy",
            "target": "1.1.0", "success": True, "started": 1000.0, "finished": 1042.25, **extra}
    return run_module(metrics_module, args, check_mode=check_mode)


def test_a_deploy_writes_the_release_that_serves_and_the_run(tmp_path):
    (tmp_path / "textfile").mkdir()
    got = write(tmp_path, app_home(tmp_path))
    path = tmp_path / "textfile/webdeploy_release_webxample.prom"
    assert got["written"] == str(path) and got["serving"] == "1.1.0" and got["changed"] is False
    assert path.read_text() == (
        "# HELP webdeploy_release_info The release an app's current link names (always 1).\n"
        "# TYPE webdeploy_release_info gauge\n"
        'webdeploy_release_info{app="webxample",version="1.1.0"} 1\n'
        "# HELP webdeploy_last_deploy_success Whether the app's last deploy or rollback succeeded (1) or failed (0).\n"
        "# TYPE webdeploy_last_deploy_success gauge\n"
        'webdeploy_last_deploy_success{app="webxample",action="deploy",version="1.1.0"} 1\n'
        "# HELP webdeploy_last_deploy_timestamp_seconds When the app's last deploy or rollback ended, in Unix time.\n"
        "# TYPE webdeploy_last_deploy_timestamp_seconds gauge\n"
        'webdeploy_last_deploy_timestamp_seconds{app="webxample",action="deploy"} 1042.25\n'
        "# HELP webdeploy_last_deploy_duration_seconds How long the app's last deploy or rollback took.\n"
        "# TYPE webdeploy_last_deploy_duration_seconds gauge\n"
        'webdeploy_last_deploy_duration_seconds{app="webxample",action="deploy"} 42.25\n')
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    # Only the .prom file is left: the temporary file was renamed, not copied.
    assert os.listdir(tmp_path / "textfile") == ["webdeploy_release_webxample.prom"]


def test_a_failed_deploy_reports_failure_and_the_release_still_serving(tmp_path):
    (tmp_path / "textfile").mkdir()
    home = app_home(tmp_path, current="1.0.0")
    write(tmp_path, home)
    got = write(tmp_path, home, target="2.0.0", success=False)
    text = (tmp_path / "textfile/webdeploy_release_webxample.prom").read_text()
    assert got["serving"] == "1.0.0"
    assert 'webdeploy_release_info{app="webxample",version="1.0.0"} 1\n' in text
    assert 'webdeploy_last_deploy_success{app="webxample",action="deploy",version="2.0.0"} 0\n' in text
    # The file is replaced: the earlier run's success line is gone.
    assert text.count("webdeploy_last_deploy_success{") == 1


def test_no_current_release_means_no_info_metric(tmp_path):
    (tmp_path / "textfile").mkdir()
    got = write(tmp_path, app_home(tmp_path, current=None), success=False, action="rollback")
    text = (tmp_path / "textfile/webdeploy_release_webxample.prom").read_text()
    assert got["serving"] == "" and "webdeploy_release_info" not in text
    assert 'webdeploy_last_deploy_success{app="webxample",action="rollback",version="1.1.0"} 0\n' in text


def test_label_values_are_escaped():
    assert metrics_module.labels(app='a"b\\c\nd') == '{app="a\\"b\\\\c\\nd"}'


def test_a_host_without_the_textfile_directory_gets_nothing(tmp_path):
    got = write(tmp_path, app_home(tmp_path))
    assert got["written"] == "" and "failed" not in got
    assert got["msg"] == f"{tmp_path / 'textfile'} does not exist (no node exporter here): no metrics written"
    assert not (tmp_path / "textfile").exists()


def test_check_mode_writes_nothing(tmp_path):
    (tmp_path / "textfile").mkdir()
    got = write(tmp_path, app_home(tmp_path), check_mode=True)
    assert got["written"].endswith("webdeploy_release_webxample.prom")
    assert os.listdir(tmp_path / "textfile") == []


def test_a_failed_write_warns_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    (tmp_path / "textfile").mkdir()

    def refuse(a, b):
        raise OSError("rename refused")

    warned = []
    monkeypatch.setattr(metrics_module.os, "rename", refuse)
    monkeypatch.setattr(metrics_module.AnsibleModule, "warn", lambda self, text: warned.append(text))
    got = write(tmp_path, app_home(tmp_path))
    path = tmp_path / "textfile/webdeploy_release_webxample.prom"
    assert "failed" not in got and got["written"] == "", got
    assert warned == [f"Could not write the deploy's metrics to {path}: rename refused"]
    assert os.listdir(tmp_path / "textfile") == []

"""The release role's build steps around the hooks (roles/release/library/release_build.py)
on a temporary release directory: the static directory given to the app's user, then
handed back to root without following links, and the marker written whole."""

import os

from release_modules import load, run_module

build = load("release_build")


def test_prepared_makes_static_the_app_users_and_is_idempotent(tmp_path):
    me = os.getuid(), os.getgid()
    assert build.prepare(str(tmp_path / "static"), *me) is True
    st = (tmp_path / "static").stat()
    assert ((st.st_uid, st.st_gid), oct(st.st_mode & 0o7777)) == (me, "0o755")
    assert build.prepare(str(tmp_path / "static"), *me) is False


def test_hand_back_gives_every_path_to_root_and_never_follows_a_link(tmp_path, monkeypatch):
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "app.css").write_text("x")
    (static / "robots.txt").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    (static / "link-to-dir").symlink_to(outside)
    (static / "link-to-file").symlink_to(outside / "secret")
    changed = []
    monkeypatch.setattr(build.os, "lchown", lambda path, uid, gid: changed.append((os.path.relpath(path, tmp_path), uid, gid)))
    # Handed to another owner than the one that made them (root, on a host): each path once.
    assert build.hand_back(str(static), os.getuid() + 1, os.getgid() + 1) == 6
    assert sorted(p for p, _, _ in changed) == ["static", "static/css", "static/css/app.css", "static/link-to-dir",
                                                "static/link-to-file", "static/robots.txt"]
    assert {(u, g) for _, u, g in changed} == {(os.getuid() + 1, os.getgid() + 1)}


def test_hand_back_of_a_release_without_static_changes_nothing(tmp_path):
    assert build.hand_back(str(tmp_path / "static")) == 0


def test_complete_writes_the_marker_whole(tmp_path):
    got = run_module(build, {"release": str(tmp_path), "state": "complete", "marker": ".done",
                             "content": "1.2.0 installed 2026-12-03T00:00:00Z by alice\n"})
    assert got["changed"] is True
    assert (tmp_path / ".done").read_text() == "1.2.0 installed 2026-12-03T00:00:00Z by alice\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".done"]


def test_check_mode_writes_nothing(tmp_path):
    got = run_module(build, {"release": str(tmp_path), "state": "complete", "marker": ".done"}, check_mode=True)
    assert got["changed"] is True and list(tmp_path.iterdir()) == []


def test_a_missing_release_or_user_is_refused_with_the_reason(tmp_path):
    got = run_module(build, {"release": str(tmp_path / "9.9.9"), "state": "complete"})
    assert got["msg"] == f"{tmp_path / '9.9.9'} is not a directory: no release to build there."
    got = run_module(build, {"release": str(tmp_path), "state": "prepared", "owner": "no-such-user-here"})
    assert got["msg"] == "No user no-such-user-here on this host: provision the app first (site.yml, role webapp)."

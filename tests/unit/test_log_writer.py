"""roles/log_receiver/files/webdeploy-log-writer: the program rsyslog (omprog) hands each
received line to. It writes every line once per sender and id, across its own restarts,
to <root>/<host>/<app>/<source>.log, and follows logrotate's renames."""

import importlib.machinery
import importlib.util
import io
import json
import os
from pathlib import Path

import pytest

WRITER = Path(__file__).resolve().parents[2] / "roles/log_receiver/files/webdeploy-log-writer"


def load():
    loader = importlib.machinery.SourceFileLoader("webdeploy_log_writer", str(WRITER))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


writer = load()


def message(host, message_id, tag, line, stamp="2026-12-05T10:00:00.000000+00:00"):
    return json.dumps({"host": host, "event": {"id": message_id, "tag": tag, "time": stamp, "line": line}}) + "\n"


def run(tmp_path, lines, monkeypatch=None):
    """Run main() as rsyslog would: lines on stdin; returns what it answered."""
    out = io.StringIO()
    stdin = io.BytesIO("".join(lines).encode() if isinstance(lines, list) else lines)
    assert writer.main(["writer", str(tmp_path / "logs"), str(tmp_path / "seen.json")], stdin, out) == 0
    return out.getvalue().splitlines()


def test_each_line_goes_to_its_host_app_and_source(tmp_path, monkeypatch):
    answers = run(tmp_path, [message("web1", "id0000a1", "shop/stdout", "started"),
                             message("web1", "id0000a2", "shop/access", 'GET / "200"'),
                             message("web2", "id0000b1", "shop/stdout", "started too")], monkeypatch)
    assert answers == ["OK"] * 4  # ready, then one per message
    logs = tmp_path / "logs"
    assert (logs / "web1/shop/stdout.log").read_text() == "2026-12-05T10:00:00.000000+00:00 started\n"
    assert (logs / "web1/shop/access.log").read_text() == '2026-12-05T10:00:00.000000+00:00 GET / "200"\n'
    assert (logs / "web2/shop/stdout.log").read_text() == "2026-12-05T10:00:00.000000+00:00 started too\n"


def test_a_resent_line_is_acknowledged_but_written_once_even_after_a_restart(tmp_path, monkeypatch):
    run(tmp_path, [message("web1", "id0000a1", "shop/stdout", "one"), message("web1", "id0000a2", "shop/stdout", "two")],
        monkeypatch)
    # rsyslog restarted the writer (its own restart); the sender re-sends a2, then sends a3.
    answers = run(tmp_path, [message("web1", "id0000a2", "shop/stdout", "two"),
                             message("web1", "id0000a3", "shop/stdout", "three")], monkeypatch)
    assert answers == ["OK"] * 3
    lines = (tmp_path / "logs/web1/shop/stdout.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two", "three"]
    assert json.loads((tmp_path / "seen.json").read_text())["dropped"] == {"web1": 1}


def test_the_same_id_from_another_host_is_another_line(tmp_path, monkeypatch):
    run(tmp_path, [message("web1", "id00000x", "shop/stdout", "one"), message("web2", "id00000x", "shop/stdout", "one")],
        monkeypatch)
    assert (tmp_path / "logs/web1/shop/stdout.log").exists()
    assert (tmp_path / "logs/web2/shop/stdout.log").exists()


def test_a_rotated_file_is_followed_by_a_new_one(tmp_path):
    files = writer.Files(str(tmp_path))
    seen = writer.Seen(str(tmp_path / "seen.json"))
    writer.handle_message(message("web1", "id000001", "shop/stdout", "before"), seen, files)
    path = tmp_path / "web1/shop/stdout.log"
    os.rename(path, str(path) + ".1")  # what logrotate does, then `create`
    path.write_text("")
    writer.handle_message(message("web1", "id000002", "shop/stdout", "after"), seen, files)
    assert (Path(str(path) + ".1")).read_text().endswith(" before\n")
    assert path.read_text().endswith(" after\n")
    os.remove(path)  # removed with no new file: the writer creates one
    writer.handle_message(message("web1", "id000003", "shop/stdout", "again"), seen, files)
    assert path.read_text().endswith(" again\n")


def test_the_memory_of_ids_is_bounded_and_survives_a_restart(tmp_path):
    seen = writer.Seen(str(tmp_path / "seen.json"), remember=3)
    for number in range(5):
        seen.add("web1", str(number))
    assert [("web1", str(n)) in seen for n in range(5)] == [False, False, True, True, True]
    seen.fold()
    again = writer.Seen(str(tmp_path / "seen.json"), remember=3)
    assert [("web1", str(n)) in again for n in range(5)] == [False, False, True, True, True]


@pytest.mark.parametrize("raw", ["not json\n", json.dumps({"host": "web1"}) + "\n",
                                 message("../../etc", "id000001", "shop/stdout", "x"),
                                 message("web1", "id000001", "../shop/stdout", "x"),
                                 message("web1\n", "id000001", "shop/stdout", "x"),
                                 message("web1", "1", "shop/stdout", "short id")])
def test_what_is_not_ours_is_kept_aside_never_outside_the_root(tmp_path, raw):
    files = writer.Files(str(tmp_path / "logs"))
    seen = writer.Seen(str(tmp_path / "seen.json"))
    path = writer.handle_message(raw, seen, files)
    assert path == str(tmp_path / "logs/_unsorted/messages.log")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "logs/_unsorted/messages.log"]


def test_a_broken_state_file_starts_empty(tmp_path):
    (tmp_path / "seen.json").write_text("{broken")
    assert ("web1", "1") not in writer.Seen(str(tmp_path / "seen.json"))


def test_a_failed_write_is_not_acknowledged(tmp_path):
    (tmp_path / "logs").write_text("a file where the root should be")
    out = io.StringIO()
    with pytest.raises(OSError):
        writer.main(["writer", str(tmp_path / "logs"), str(tmp_path / "seen.json")],
                    io.BytesIO(message("web1", "id000001", "shop/stdout", "x").encode()), out)
    assert out.getvalue().splitlines() == ["OK"]  # ready, and nothing for the message


def test_the_ids_survive_a_writer_killed_before_it_folded_them(tmp_path):
    # SIGKILL, or anything that skips the final fold: the journal has every id written.
    files = writer.Files(str(tmp_path / "logs"))
    seen = writer.Seen(str(tmp_path / "seen.json"))
    writer.handle_message(message("web1", "id000001", "shop/stdout", "one"), seen, files)
    again = writer.Seen(str(tmp_path / "seen.json"))
    assert writer.handle_message(message("web1", "id000001", "shop/stdout", "one"), again, files) is None
    assert (tmp_path / "logs/web1/shop/stdout.log").read_text().count(" one\n") == 1
    assert writer.Seen(str(tmp_path / "seen.json")).dropped == {"web1": 1}


def test_odd_bytes_and_lone_surrogates_are_kept_escaped_and_acknowledged(tmp_path):
    raw = (message("web1", "id000001", "shop/stdout", "caf\udce9").encode()
           + b'{"host": "web1", "event": {"id": "id000002", "tag": "shop/stdout", "time": "t", "line": "caf\xe9"}}\n')
    assert run(tmp_path, raw) == ["OK"] * 3
    text = (tmp_path / "logs/web1/shop/stdout.log").read_text()
    assert text.splitlines() == ["2026-12-05T10:00:00.000000+00:00 caf\\udce9", "t caf\\udce9"]


def test_a_message_that_breaks_the_writer_is_kept_aside_and_the_next_one_written(tmp_path, monkeypatch, capsys):
    real = writer.handle_message

    def broken_once(raw, seen, files):
        if "boom" in raw:
            raise RuntimeError("a bug")
        return real(raw, seen, files)

    monkeypatch.setattr(writer, "handle_message", broken_once)
    answers = run(tmp_path, [message("web1", "id000001", "shop/stdout", "boom"),
                             message("web1", "id000002", "shop/stdout", "fine")])
    assert answers == ["OK"] * 3
    assert "RuntimeError: a bug" in capsys.readouterr().err
    assert "boom" in (tmp_path / "logs/_unsorted/messages.log").read_text()
    assert (tmp_path / "logs/web1/shop/stdout.log").read_text().endswith(" fine\n")


def test_at_most_so_many_files_stay_open(tmp_path):
    files = writer.Files(str(tmp_path), max_open=2)
    for app in ("a", "b", "c"):
        files.write(files.path_for("web1", f"{app}/stdout"), "x\n")
    assert [os.path.basename(os.path.dirname(p)) for p in files.open_files] == ["b", "c"]
    files.write(files.path_for("web1", "a/stdout"), "y\n")
    assert (tmp_path / "web1/a/stdout.log").read_text() == "x\ny\n"

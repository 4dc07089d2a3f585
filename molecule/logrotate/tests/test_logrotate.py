"""Behaviour of the `logrotate` role on the logs of live Circus watchers (../converge.yml).

Both watchers print "seq <n>" every 0.1 s. Circus reopens `ticker`'s log when it is
renamed (rotated with create) and keeps `holder`'s open for good (rotated with copytruncate).
"""

import time

import pytest
from sandbox_support import apply_role, assert_check_mode_clean, check_once

LOG = "/var/log/holder/stdout.log"
ENTRY = {"name": "holder", "paths": ["/var/log/holder/*.log"], "rotate": 3, "su": ["root", "adm"]}
TICKER_LOG = "/var/log/ticker/stdout.log"


def numbers(text):
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("seq ")]


def read(host, path):
    with host.sudo():
        return host.check_output(f"cat {path}") if host.file(path).exists else ""


def wait_for_live_lines(host):
    """The live log once it holds at least 20 lines (polled, 15 s at most)."""
    live = ""
    for _ in range(75):
        time.sleep(0.2)
        live = read(host, LOG)
        if len(numbers(live)) >= 20:
            break
    return live


def force_rotation(host):
    """Rotate the holder's log now; return (rotated text, live text) once the live file
    has had time for new lines."""
    with host.sudo():
        host.check_output("logrotate -f /etc/logrotate.d/holder")
    return read(host, LOG + ".1"), wait_for_live_lines(host)


def test_daily_rotation_is_scheduled(host):
    assert host.service("logrotate.timer").is_enabled


def test_each_entry_uses_the_mode_of_its_writer(host):
    assert "copytruncate" in host.file("/etc/logrotate.d/holder").content_string
    ticker = host.file("/etc/logrotate.d/ticker").content_string
    assert "create 0640 root adm" in ticker and "copytruncate" not in ticker
    assert not host.file("/etc/logrotate.d/retired").exists


def test_reopening_writer_loses_no_line_across_rotations(host):
    # No pause anywhere: ten rotations while the writer runs. Every line of its latest run
    # must be found exactly once in the live file or one of the rotated ones.
    wait_for_lines(host, TICKER_LOG)
    rotations = 10
    with host.sudo():
        for _ in range(rotations):
            host.check_output("logrotate -f /etc/logrotate.d/ticker")
            time.sleep(0.5)
        time.sleep(1)  # lines still in the pipe reach a file
        rotated = [name for name in host.check_output("ls -1 /var/log/ticker/").split()
                   if name.startswith("stdout.log.")]
        # Oldest first (stdout.log.20[.gz] ... stdout.log.1), the live file last.
        rotated.sort(key=lambda name: -int(name.split(".")[2]))
        text = host.check_output(
            "cd /var/log/ticker && zcat -f " + " ".join(rotated + ["stdout.log"]))
    assert len(rotated) >= rotations, rotated
    run = latest_run(numbers(text))
    assert len(run) >= rotations * 4, "the writer did not run through the rotations"
    assert len(run) == len(set(run)), "lines written twice"
    missing = sorted(set(range(run[0], run[-1] + 1)) - set(run))
    assert not missing and contiguous(run), f"lines lost: {missing[:20]}"


def wait_for_lines(host, path=LOG):
    """Let the writer run long enough that the log is not empty (notifempty)."""
    for _ in range(50):
        if numbers(read(host, path)):
            return
        time.sleep(0.2)


def latest_run(values):
    """The writer counts from 0 again when Circus restarts it: its latest run."""
    return values[len(values) - 1 - values[::-1].index(0):] if 0 in values else values


def contiguous(values):
    return values == list(range(values[0], values[0] + len(values))) if values else True


def test_rotation_keeps_the_live_log_flowing(host):
    wait_for_lines(host)
    rotated, live = force_rotation(host)
    rotated_n, live_n = latest_run(numbers(rotated)), numbers(live)
    assert rotated_n, "no rotated file with the old lines"
    assert len(live_n) >= 20, "the live log went silent after rotation"
    assert "\0" not in live, "the writer does not append: holes after truncation"
    assert live_n[0] > rotated_n[-1], "lines were written twice"
    # Nothing is lost inside either file. At the seam, logrotate's copytruncate has a
    # window (copy, fsync, truncate) in which a line written is lost; logrotate documents
    # it. Measured here: 1 line in 40 rotations at 10 lines/s. The next test shows that
    # nothing else is lost.
    assert contiguous(rotated_n) and contiguous(live_n)


def test_rotation_loses_no_line_written_outside_the_copy_window(host):
    # The writer is paused while logrotate copies and truncates: every line it wrote
    # before is in the rotated file, every line after in the live one, none missing.
    wait_for_lines(host)
    with host.sudo():
        pid = host.check_output("pgrep -u holder -f /usr/local/bin/ticker")
        host.check_output(f"kill -STOP {pid}")
        try:
            time.sleep(0.5)  # let Circus write out what it has read from the pipe
            host.check_output("logrotate -f /etc/logrotate.d/holder")
        finally:
            host.check_output(f"kill -CONT {pid}")
    live = wait_for_live_lines(host)
    together = numbers(read(host, LOG + ".1")) + numbers(live)
    run = latest_run(together)
    assert len(run) > len(numbers(live)), "the writer restarted during the test"
    assert contiguous(run), f"lines missing between {run[0]} and {run[-1]}"


# The role's sentence for an entry it refuses: the same whichever rule the entry breaks.
INVALID_HOLDER = ("Invalid logrotate entry \"holder\": it needs a name (letters, digits, '_', '.', '-'), state present "
                  "or absent, absolute paths without spaces or braces, frequency one of daily, weekly, monthly, "
                  "yearly, rotate a whole number, size like 100M, su as [user, group], and either copytruncate or "
                  "create.")


# Each message is the whole sentence the role, Ansible's argument-spec check or
# `logrotate -d` prints for that entry, compared with runs of whitespace made single
# spaces. A run that fails for any other reason does not print it.
@pytest.mark.parametrize(("entry", "message"), [
    (dict(ENTRY, paths=["/var/log/holder/my log"]), INVALID_HOLDER),
    (dict(ENTRY, copytruncate=False), INVALID_HOLDER),
    (dict(ENTRY, rotate="many"),
     "argument 'rotate' is of type str found in 'logrotate_entries'. and we were unable to convert to int: "
     "\"'many'\" cannot be converted to an int"),
    (dict(ENTRY, options=["bogusoption"]), "unknown option 'bogusoption' -- ignoring line"),
])
def test_bad_entry_fails_and_changes_nothing(host, scenario_dir, entry, message):
    check_once(host)
    snapshot = "ls -l --time-style=full-iso /etc/logrotate.d; sha256sum /etc/logrotate.d/*"
    before = host.check_output(snapshot)
    result = apply_role(scenario_dir, "logrotate", {"logrotate_entries": [entry]}, "--limit", host.backend.host)
    assert result.returncode != 0, result.stdout[-3000:]
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert host.check_output(snapshot) == before


def test_check_mode_reports_no_change(scenario_dir):
    assert_check_mode_clean(scenario_dir)


def test_without_copytruncate_the_live_log_goes_silent(host, scenario_dir):
    # The failure copytruncate exists to prevent, shown with the same probe: after a
    # plain rotation (rename + create) Circus keeps writing into the renamed file.
    plain = dict(ENTRY, copytruncate=False, create="0640 root adm")
    try:
        assert apply_role(scenario_dir, "logrotate", {"logrotate_entries": [plain]},
                          "--limit", host.backend.host).returncode == 0
        rotated, live = force_rotation(host)
        assert numbers(live) == []
        time.sleep(1)
        assert len(numbers(read(host, LOG + ".1"))) > len(numbers(rotated)), "lines go to the rotated file"
    finally:
        restored = apply_role(scenario_dir, "logrotate", {"logrotate_entries": [ENTRY]}, "--limit", host.backend.host)
        assert restored.returncode == 0, restored.stdout[-3000:]
        with host.sudo():
            host.check_output("/usr/local/sbin/circusctl restart holder")

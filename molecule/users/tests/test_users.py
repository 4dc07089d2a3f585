"""Behaviour of the `users` role on a converged host (see ../converge.yml)."""

import pytest
from sandbox_support import apply_role, assert_check_mode_clean, check_once, ssh


def test_app_user_is_a_system_account_without_login(host):
    shop = host.user("shop")
    assert shop.exists
    assert shop.shell == "/usr/sbin/nologin"
    assert shop.home == "/srv/apps/shop"
    assert shop.uid < 1000
    assert shop.password in ("!", "!*", "*")
    assert host.group("shop").exists


def test_app_user_cannot_log_in(host):
    with host.sudo():
        result = host.run("su - shop -c id")
    assert result.rc != 0
    assert "uid=" not in result.stdout


def test_operator_logs_in_over_ssh_with_the_inventory_key(host):


    result = ssh(host, "alice", "id -un; id -Gn")
    assert result.returncode == 0, result.stderr
    name, groups = result.stdout.split("\n")[:2]
    assert name == "alice"
    assert set(groups.split()) >= {"alice", "adm", "shop"}


def test_operator_with_sudo_rights_can_sudo(host):


    result = ssh(host, "alice", "sudo -n id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_operator_without_sudo_rights_cannot_sudo(host):


    login = ssh(host, "bob", "id -un")
    assert login.returncode == 0, login.stderr
    result = ssh(host, "bob", "sudo -n true")
    assert result.returncode != 0
    assert not host.file("/etc/sudoers.d/bob").exists


def test_sudoers_drop_in_is_private_and_valid(host):
    drop_in = host.file("/etc/sudoers.d/alice")
    assert drop_in.user == "root"
    assert drop_in.mode == 0o440
    with host.sudo():
        assert host.run("visudo -c").rc == 0


def test_removed_operator_and_app_are_gone(host):
    assert not host.user("leaver").exists
    assert not host.file("/home/leaver").exists
    assert not host.file("/etc/sudoers.d/leaver").exists
    assert not host.user("retired").exists


# Bad input: the play fails with a clear message and the host is left exactly as it was.
# "carol" is a valid new account listed beside the bad entry: she must not be created.
CAROL = {"name": "carol", "sudo": ["ALL=(ALL:ALL) ALL"]}
BAD_INPUTS = {
    "invalid name": ({"users_operators": [CAROL, {"name": "Bad Name"}]}, "Invalid account"),
    "broken sudo rule": ({"users_operators": [CAROL, {"name": "alice", "groups": ["adm", "shop"],
                                                      "sudo": ["ALL=(ALL NOPASSWD: ALL"]}]},
                         "visudo rejected the sudo rules of alice"),
    "list given as a string": ({"users_operators": "carol"}, "users_operators"),
    "unknown group": ({"users_operators": [dict(CAROL, groups=["no-such-group"])]},
                      "These groups do not exist"),
    "removing a system account": ({"users_apps": [{"name": "www-data", "state": "absent"}]},
                                  "not a system account"),
    "duplicate name": ({"users_operators": [CAROL, CAROL]}, "listed more than once"),
}
SNAPSHOT = "getent passwd; getent group; sha256sum /etc/sudoers /etc/sudoers.d/*; ls -la /home"


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_clearly_and_changes_nothing(host, scenario_dir, case):
    check_once(host)
    role_vars, message = BAD_INPUTS[case]
    with host.sudo():
        before = host.check_output(SNAPSHOT)
    result = apply_role(scenario_dir, "users", role_vars, "--limit", host.backend.host)
    assert result.returncode != 0, result.stdout[-3000:]
    assert message in result.stdout, result.stdout[-3000:]
    with host.sudo():
        assert host.check_output(SNAPSHOT) == before
    assert not host.user("carol").exists
    # sudo keeps working for the operator who has it
    assert ssh(host, "alice", "sudo -n true").returncode == 0


def test_check_mode_reports_no_change(scenario_dir):
    assert_check_mode_clean(scenario_dir)

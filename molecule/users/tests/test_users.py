"""Behaviour of the `users` role on a converged host (see ../converge.yml)."""

import pytest
from sandbox_support import apply_role, assert_check_mode_clean, check_once, recap, run_playbook, ssh

OPERATORS = ["alice", "bob", "dave"]  # the present operators of converge.yml
# dave's sudo rules in converge.yml, as `sudo -l` lists them
DAVE_SUDO = ["(root) NOPASSWD: /usr/bin/id -u", "(shop) NOPASSWD: /usr/bin/id -un"]
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/10-users-operator-{}.conf"


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
    for name in ("alice", "dave"):
        drop_in = host.file(f"/etc/sudoers.d/{name}")
        assert drop_in.user == "root"
        assert drop_in.mode == 0o440
    with host.sudo():
        assert host.run("visudo -c").rc == 0


def test_sudo_lists_only_the_declared_rules(host):
    with host.sudo():
        listing = host.check_output("sudo -l -U dave")
    rules = listing.split("may run the following commands on")[1].split("\n")[1:]
    assert [rule.strip() for rule in rules if rule.strip()] == DAVE_SUDO, listing


@pytest.mark.parametrize("command, output", [
    ("sudo -n /usr/bin/id -u", "0"),
    ("sudo -n -u shop /usr/bin/id -un", "shop"),
])
def test_restricted_operator_runs_the_declared_commands(host, command, output):
    result = ssh(host, "dave", command)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == output


@pytest.mark.parametrize("command", [
    "sudo -n id",                       # the declared command without its arguments
    "sudo -n /usr/bin/id -un",          # declared as shop, not as root
    "sudo -n -u shop /usr/bin/id -u",   # declared as root, not as shop
    "sudo -n true",
])
def test_restricted_operator_is_refused_anything_else(host, command):
    result = ssh(host, "dave", command)
    assert result.returncode == 1, result
    assert "sudo:" in result.stderr, result.stderr
    assert result.stdout == ""


# sshd: the operators log in with keys only; other accounts keep sshd's own settings.
def offered_methods(host, user):
    """Ask the host's sshd over the SSH protocol (from inside the host) which authentication
    methods it offers `user`: the "none" method is refused with the list of the others."""
    # ssh's own exit status (255) is printed, not returned: testinfra would take a 255
    # for a failed connection to the test host.
    result = host.run(
        "ssh -o PreferredAuthentications=none -o BatchMode=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 "
        f"-p 22 {user}@127.0.0.1 true 2>&1; echo \"exit $?\"")
    *message, status = result.stdout.strip().splitlines()
    assert status == "exit 255", result.stdout
    return "\n".join(message).strip()


def sshd_settings(host, user):
    """sshd's effective settings (sshd -T) for `user` connecting from 127.0.0.1, one line each."""
    with host.sudo():
        return host.check_output(f"/usr/sbin/sshd -T -C user={user},host=x,addr=127.0.0.1").splitlines()


def setting(lines, key):
    return [line.split(" ", 1)[1] for line in lines if line.startswith(key + " ")]


@pytest.mark.parametrize("operator", OPERATORS)
def test_sshd_offers_operators_no_password_method(host, operator):
    assert offered_methods(host, operator) == f"{operator}@127.0.0.1: Permission denied (publickey)."


@pytest.mark.parametrize("user", ["root", "shop"])
def test_sshd_keeps_its_normal_methods_for_other_accounts(host, user):
    # Debian's sshd_config leaves PasswordAuthentication at its default (yes): sshd offers
    # passwords to accounts that are not operators, so the operators' list above is the
    # drop-in's doing, not the image's.
    assert setting(sshd_settings(host, user), "passwordauthentication") == ["yes"]
    assert offered_methods(host, user) == f"{user}@127.0.0.1: Permission denied (publickey,password)."


@pytest.mark.parametrize("operator", OPERATORS)
def test_sshd_config_refuses_passwords_only_to_operators(host, operator):
    operator_settings = sshd_settings(host, operator)
    root_settings = sshd_settings(host, "root")
    assert setting(operator_settings, "passwordauthentication") == ["no"]
    assert setting(operator_settings, "kbdinteractiveauthentication") == ["no"]
    assert setting(root_settings, "passwordauthentication") == ["yes"]
    # The Match block ends with its drop-in: everything else in sshd_config (read after
    # the Include line) applies to operators and root alike.
    differ = {line.split(" ", 1)[0] for line in set(operator_settings) ^ set(root_settings)}
    assert differ == {"passwordauthentication"}, differ


def test_sshd_drop_ins_are_root_owned_and_valid(host):
    for operator in OPERATORS:
        drop_in = host.file(SSHD_DROP_IN.format(operator))
        assert drop_in.user == "root"
        assert drop_in.group == "root"
        assert drop_in.mode == 0o644
        assert f"Match User {operator}\n" in drop_in.content_string
    with host.sudo():
        assert host.run("/usr/sbin/sshd -t").rc == 0


def test_disabling_removes_the_sshd_drop_ins(host, scenario_dir):
    check_once(host)
    limit = ("--limit", host.backend.host)
    try:
        result = apply_role(scenario_dir, "users", {"users_sshd_refuse_operator_passwords": False}, *limit)
        assert result.returncode == 0, result.stdout[-3000:]
        for operator in OPERATORS:
            assert not host.file(SSHD_DROP_IN.format(operator)).exists
        assert setting(sshd_settings(host, "alice"), "passwordauthentication") == ["yes"]
        assert offered_methods(host, "alice") == "alice@127.0.0.1: Permission denied (publickey,password)."
    finally:
        restored = run_playbook(scenario_dir, "converge.yml", *limit)
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert offered_methods(host, "alice") == "alice@127.0.0.1: Permission denied (publickey)."


def test_host_without_sshd_skips_the_sshd_step(host, scenario_dir):
    check_once(host)
    # __users_sshd names the binary the role looks for: a missing one stands for a host
    # without sshd. Disabled, the role would otherwise remove the drop-ins.
    result = apply_role(scenario_dir, "users", {"users_sshd_refuse_operator_passwords": False,
                                                "__users_sshd": "/nonexistent/sshd"},
                        "--limit", host.backend.host)
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result, [host.backend.host])[host.backend.host]["changed"] == 0, result.stdout[-3000:]
    for operator in OPERATORS:
        assert host.file(SSHD_DROP_IN.format(operator)).exists


def test_removed_operator_and_app_are_gone(host):
    assert not host.user("leaver").exists
    assert not host.file("/home/leaver").exists
    assert not host.file("/etc/sudoers.d/leaver").exists
    assert not host.file(SSHD_DROP_IN.format("leaver")).exists
    assert not host.user("retired").exists


# Bad input: the play fails with a clear message and the host is left exactly as it was.
# "carol" is a valid new account listed beside the bad entry: she must not be created.
# Each message is the whole sentence the role (or Ansible's argument-spec check) prints
# for that input, compared with runs of whitespace made single spaces; "{host}" is the
# host's name. A run that fails for any other reason does not print it.
CAROL = {"name": "carol", "sudo": ["ALL=(ALL:ALL) ALL"]}
# The role's sentence for an account it refuses (the same whichever rule is broken), up
# to its list of system accounts (roles/users/vars/main.yml).
INVALID_ACCOUNT = ("Invalid account {}: a name is 1 to 32 characters of lower-case letters, digits, '_' or '-', "
                   "starting with a letter or '_', and not a system account (")
BAD_INPUTS = {
    "invalid name": ({"users_operators": [CAROL, {"name": "Bad Name"}]}, INVALID_ACCOUNT.format('"Bad Name"')),
    # visudo's own report: the rule is on line 4 of the drop-in, after the 3-line
    # ansible_managed header of templates/etc/sudoers.d/operator.j2.
    "broken sudo rule": ({"users_operators": [CAROL, {"name": "alice", "groups": ["adm", "shop"],
                                                      "sudo": ["ALL=(ALL NOPASSWD: ALL"]}]},
                         "visudo rejected the sudo rules of alice (stdin:4:16: syntax error "
                         "alice ALL=(ALL NOPASSWD: ALL ^~~~~~~~~). Nothing was changed."),
    "list given as a string": ({"users_operators": "carol"},
                               "Elements value for option 'users_operators' is of type str and we were unable "
                               "to convert to dict: dictionary requested, could not parse JSON or key=value"),
    "unknown group": ({"users_operators": [dict(CAROL, groups=["no-such-group"])]},
                      "These groups do not exist on {host}: no-such-group. Create them first, or list the "
                      "application that owns them in users_apps."),
    "removing a system account": ({"users_apps": [{"name": "www-data", "state": "absent"}]},
                                  INVALID_ACCOUNT.format('"www-data"')),
    "duplicate name": ({"users_operators": [CAROL, CAROL]},
                       "Accounts listed more than once in users_operators/users_apps: carol"),
    # Ansible lists the valid booleans in no fixed order: the sentence up to that list.
    "sshd switch not a boolean": ({"users_operators": [CAROL], "users_sshd_refuse_operator_passwords": "maybe"},
                                  "argument 'users_sshd_refuse_operator_passwords' is of type str and we were "
                                  "unable to convert to bool: The value 'maybe' is not a valid boolean."),
}
SNAPSHOT = ("getent passwd; getent group; sha256sum /etc/sudoers /etc/sudoers.d/*; ls -la /home; "
            "sha256sum /etc/ssh/sshd_config /etc/ssh/sshd_config.d/*")


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_clearly_and_changes_nothing(host, scenario_dir, case):
    check_once(host)
    role_vars, message = BAD_INPUTS[case]
    with host.sudo():
        before = host.check_output(SNAPSHOT)
    result = apply_role(scenario_dir, "users", role_vars, "--limit", host.backend.host)
    assert result.returncode != 0, result.stdout[-3000:]
    assert message.format(host=host.backend.host) in " ".join(result.stdout.split()), result.stdout[-3000:]
    with host.sudo():
        assert host.check_output(SNAPSHOT) == before
    assert not host.user("carol").exists
    # sudo keeps working for the operator who has it
    assert ssh(host, "alice", "sudo -n true").returncode == 0


def test_check_mode_reports_no_change(scenario_dir):
    assert_check_mode_clean(scenario_dir)

"""tests/awx_runner.py runs jobs the way AWX does: a trivial job on the controller
only (no remote host), with a vaulted variable, a limit and set_stats, and a syntax check
of the real deploy playbook through the project layout.
"""

import textwrap

import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from awx_runner import PROJECT, SANDBOX_VAULT, awx_job_vars, lay_out, run_job, stats_data, stdout

SECRET = "not-so-secret"


def encrypt(value, vault_id="sandbox"):
    secret = VaultSecret(SANDBOX_VAULT[vault_id].encode())
    return VaultLib([(vault_id, secret)]).encrypt(value, secret=secret, vault_id=vault_id).decode()


def trivial_project(tmp_path):
    project = tmp_path / "project-src"
    project.mkdir()
    (project / "job.yml").write_text(textwrap.dedent("""\
        ---
        - name: A job on the controller only
          hosts: all
          connection: local
          gather_facts: false
          tasks:
            - name: Check the vaulted variable and the survey answer
              ansible.builtin.assert:
                that:
                  - secret_value == 'not-so-secret'
                  - app_version == '1.2.3'
                  - awx_job_id == 42
            - name: Publish the version for later workflow nodes
              ansible.builtin.set_stats:
                data:
                  webdeploy: {webxample: {deployed: "{{ app_version }}", previous: "1.2.2"}}
                per_host: false
        """), encoding="utf-8")
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"one": {}, "two": {}}}}), encoding="utf-8")
    vaulted = "secret_value: !vault |\n" + textwrap.indent(encrypt(SECRET), "  ") + "\n"
    (inventory / "group_vars/all.yml").write_text(vaulted, encoding="utf-8")
    return project, inventory


def test_private_data_dir_is_laid_out_as_awx_does(tmp_path):
    root = lay_out(tmp_path / "job", extravars={"app_version": "1.2.3"}, limit="web-debian12",
                   inventory=PROJECT / "inventories/sandbox", vault_passwords=SANDBOX_VAULT)
    assert (root / "project/ansible.cfg").is_file()
    assert (root / "inventory/hosts.yml").is_file()
    assert (root / "env/cmdline").read_text(encoding="utf-8") == "--vault-id sandbox@prompt --limit web-debian12"
    passwords = yaml.safe_load((root / "env/passwords").read_text(encoding="utf-8"))
    assert passwords == {r"Vault password \(sandbox\):\s*?$": SANDBOX_VAULT["sandbox"]}
    settings = yaml.safe_load((root / "env/settings").read_text(encoding="utf-8"))
    assert settings["job_timeout"] > 0 and settings["idle_timeout"] > 0
    assert oct((root / "env/passwords").stat().st_mode & 0o777) == "0o600"


def test_a_job_answers_the_vault_prompt_and_publishes_its_stats(tmp_path):
    project, inventory = trivial_project(tmp_path)
    result = run_job("job.yml", private_data_dir=tmp_path / "job", project=project, inventory=inventory,
                     extravars={"app_version": "1.2.3", **awx_job_vars(42)}, limit="two",
                     vault_passwords=SANDBOX_VAULT)
    assert (result.status, result.rc) == ("successful", 0), stdout(result.events)[-3000:]
    assert set(result.stats["ok"]) == {"two"}, "the limit was not applied"
    assert stats_data(result.events) == {"webdeploy": {"webxample": {"deployed": "1.2.3", "previous": "1.2.2"}}}


def test_a_job_without_the_vault_password_fails(tmp_path):
    project, inventory = trivial_project(tmp_path)
    result = run_job("job.yml", project=project, inventory=inventory, extravars={"app_version": "1.2.3"})
    assert result.status == "failed"
    assert "vault" in stdout(result.events).lower()


def test_deploy_playbook_passes_a_syntax_check_as_an_awx_job():
    result = run_job("playbooks/deploy.yml", inventory=PROJECT / "inventories/sandbox",
                     vault_passwords=SANDBOX_VAULT, cmdline=["--syntax-check"])
    assert (result.status, result.rc) == ("successful", 0), stdout(result.events)[-3000:]

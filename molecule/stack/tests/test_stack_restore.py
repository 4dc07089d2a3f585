"""The package index backed up, destroyed and restored onto a new host; last, because it
replaces stack-index (playbooks/index-backup.yml, index-restore.yml; roles/devpi/README.md).

The released wheels come back with the same bytes, a deploy installs a release from the
restored index, and the restored index still refuses to overwrite a released version.
"""

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_support import PROJECT, SANDBOX_CA, run_playbook
from stack_support import WEB, deploy, link, serving

INDEX = "stack-index"
ANSIBLE = Path(sys.executable).parent / "ansible"
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0"]  # released by test_stack.py


def wheel_hashes(web):
    """{file name: sha256} of webxample's wheels on the private index, from its simple page
    (what pip reads), asked from a web host."""
    page = web.check_output("curl -sf https://stack-index/acme/prod/+simple/webxample/")
    return dict(re.findall(r"(webxample-[0-9.]+-py3-none-any\.whl)#sha256=([0-9a-f]{64})", page))


@pytest.fixture(name="restored", scope="module")
def fixture_restored(scenario_dir, web, tmp_path_factory):
    backups = tmp_path_factory.mktemp("index-backups")
    before = wheel_hashes(web[WEB[0]])
    backup = run_playbook(scenario_dir, PROJECT / "playbooks/index-backup.yml",
                          extra_vars={"devpi_backup_dir": str(backups)})
    assert backup.returncode == 0, backup.stdout[-3000:]
    files = sorted((backups / INDEX).glob(f"devpi-{INDEX}-*.tar.gz"))
    assert len(files) == 1, files
    subprocess.run(["podman", "rm", "-f", INDEX], check=True, capture_output=True)
    created = run_playbook(scenario_dir, PROJECT / "tests/sandbox/create.yml")
    assert created.returncode == 0, created.stdout[-3000:]
    restore = run_playbook(scenario_dir, PROJECT / "playbooks/index-restore.yml",
                           extra_vars={"devpi_restore_file": str(files[0])})
    return before, backup, files[0], restore


def test_the_backup_is_on_the_controller_with_its_checksum(restored):
    _, backup, archive, _ = restored
    assert "Backed up the index of stack-index to " + str(archive) in " ".join(backup.stdout.split())
    checked = subprocess.run(["sha256sum", "-c", archive.name + ".sha256"], cwd=archive.parent,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and checked.stdout.strip() == f"{archive.name}: OK", checked
    assert oct(archive.stat().st_mode & 0o777) == "0o600"


def test_the_released_wheels_come_back_with_the_same_bytes(web, restored):
    before, _, _, restore = restored
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert sorted(before) == sorted(f"webxample-{v}-py3-none-any.whl" for v in VERSIONS), before
    assert wheel_hashes(web[WEB[0]]) == before


def test_a_deploy_installs_from_the_restored_index(scenario_dir, web, restored):
    # A version that is neither current nor previous on the host, its release removed
    # first: the deploy must build its virtualenv from the restored index.
    host = web[WEB[1]]
    keep = {link(host, "shop", "current"), link(host, "shop", "previous")}
    version = next(v for v in ["1.4.0", "1.1.0", "1.0.0"] if v not in keep)
    with host.sudo():
        host.check_output(f"rm -rf /srv/apps/shop/releases/{version}")
    result = deploy(scenario_dir, version, "shop", "--limit", WEB[1])
    assert result.returncode == 0, result.stdout[-4000:]
    assert serving(host, "shop.test") == version
    assert host.file(f"/srv/apps/shop/releases/{version}/venv").is_directory


def upload_password(scenario_dir):
    """The upload account's password, from the scenario's vault (test-only secrets)."""
    out = subprocess.run([str(ANSIBLE), INDEX, "-i", f"{scenario_dir}/inventory", "-m", "ansible.builtin.debug",
                          "-a", "msg={{ devpi_upload_password | b64encode }}"],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))).stdout
    # "msg": "..." (JSON) or msg: ... (YAML results, as Molecule's config sets them).
    found = re.search(r'"?msg"?:\s*"?([A-Za-z0-9+/=]+)"?', out)
    assert found, f"no password in the output of ansible's debug module: {out[-500:]}"
    return base64.b64decode(found.group(1)).decode()


def upload(scenario_dir, tmp_path, content):
    """(HTTP status, body) of an upload of `content` as webxample 1.0.0's wheel to the
    private index, over HTTPS through its port published on the controller (trusting the
    sandbox's CA), as the upload account."""
    wheel = tmp_path / "webxample-1.0.0-py3-none-any.whl"
    wheel.write_bytes(content)
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-u", f"acme:{upload_password(scenario_dir)}",
                          "-F", ":action=file_upload", "-F", "name=webxample", "-F", "version=1.0.0",
                          "-F", f"content=@{wheel}", "--cacert", str(SANDBOX_CA), "https://localhost:2273/acme/prod/"],
                         capture_output=True, text=True, check=False)
    body, _, status = out.stdout.rpartition("\n")
    return status, body


def test_the_restored_index_still_refuses_to_overwrite_a_release(scenario_dir, restored, tmp_path):
    # The server's own refusal, not publish.yml's check: other bytes under a released
    # file name answer 409 Conflict. A wrong password would answer 401: the 409 shows that
    # the upload account (its password reset from the vault) got as far as the index.
    status, body = upload(scenario_dir, tmp_path, b"other bytes")
    assert (status, "409 webxample-1.0.0-py3-none-any.whl already exists in non-volatile index" in body) == ("409", True), body

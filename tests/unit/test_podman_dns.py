"""scripts/podman-dns: which DNS plugin bootstrap installs for podman's network backend,
and what it does with a sandbox network created without DNS.

podman, dpkg-query and apt-get are stand-ins on PATH that answer as a machine of each
kind would and record what they were asked to do; nothing is installed.
"""

import os
import subprocess

import pytest
from sandbox_support import PROJECT

SCRIPT = PROJECT / "scripts/podman-dns"
DNSNAME = "golang-github-containernetworking-plugin-dnsname"

FAKE_PODMAN = r"""#!/bin/bash
echo "podman $*" >> "$FAKE_LOG"
state=$FAKE_DIR/network
case "$1 $2" in
  "info --format")
    [ "$FAKE_BACKEND" = podman3 ] && { echo 'template: info:1: NetworkBackend is not a field' >&2; exit 125; }
    echo "$FAKE_BACKEND" ;;
  "network exists") [ "$(cat "$state")" != missing ] ;;
  "network inspect") cat "$state" ;;
  "network rm") echo missing > "$state" ;;
  "network create") echo true > "$state" ;;
  "ps -a") [ -z "$FAKE_USERS" ] || printf '%s\n' $FAKE_USERS ;;
  *) echo "unexpected: podman $*" >&2; exit 99 ;;
esac
"""
FAKE_DPKG_QUERY = r"""#!/bin/bash
for p in $FAKE_INSTALLED; do [ "$p" = "${@: -1}" ] && { echo -n "install ok installed"; exit 0; }; done
exit 1
"""
FAKE_APT_GET = r"""#!/bin/bash
echo "apt-get $*" >> "$FAKE_LOG"
"""


def run(tmp_path, *args, backend="cni", network="missing", users="", installed=""):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("podman", FAKE_PODMAN), ("dpkg-query", FAKE_DPKG_QUERY), ("apt-get", FAKE_APT_GET)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "network").write_text(network + "\n")
    log = tmp_path / "log"
    log.write_text("")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_DIR=str(tmp_path), FAKE_LOG=str(log),
               FAKE_BACKEND=backend, FAKE_USERS=users, FAKE_INSTALLED=installed,
               CONTAINERS_CONF="/project/tests/containers.conf")
    result = subprocess.run([str(SCRIPT), *args], env=env, text=True, capture_output=True, timeout=30, check=False)
    return result, log.read_text().splitlines()


@pytest.mark.parametrize(("backend", "package"), [("cni", DNSNAME), ("netavark", "aardvark-dns")])
def test_the_package_for_each_backend(tmp_path, backend, package):
    result, _ = run(tmp_path, "package", backend)
    assert (result.returncode, result.stdout) == (0, package + "\n")


def test_an_unknown_backend_is_refused(tmp_path):
    result, _ = run(tmp_path, "package", "slirp")
    assert result.returncode == 2
    assert result.stderr == "podman-dns: unknown podman network backend 'slirp' (expected cni or netavark)\n"


@pytest.mark.parametrize(("backend", "package"), [
    ("cni", DNSNAME),               # Debian 12's podman 4.3
    ("netavark", "aardvark-dns"),   # Debian 13's podman 5, Ubuntu 24.04
    ("podman3", DNSNAME),           # Ubuntu 22.04: no NetworkBackend field, CNI only
])
def test_ensure_installs_the_plugin_of_the_backend_podman_uses(tmp_path, backend, package):
    result, calls = run(tmp_path, "ensure", backend=backend)
    assert result.returncode == 0, result.stderr
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert installs == [f"apt-get install -y -qq --no-install-recommends {package}"], calls


def test_ensure_installs_nothing_when_the_plugin_is_there(tmp_path):
    result, calls = run(tmp_path, "ensure", backend="netavark", installed="aardvark-dns")
    assert result.returncode == 0, result.stderr
    assert [c for c in calls if c.startswith("apt-get")] == []


def test_a_network_with_dns_is_left_alone(tmp_path):
    result, calls = run(tmp_path, "ensure", network="true", installed=DNSNAME)
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c.startswith(("podman network rm", "podman network create"))], calls


def test_an_unused_network_without_dns_is_recreated(tmp_path):
    result, calls = run(tmp_path, "ensure", network="false", installed=DNSNAME)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "podman-dns: recreating the podman network webdeploy with DNS (it was created without)\n"
    assert [c for c in calls if c.startswith(("podman network rm", "podman network create"))] == [
        "podman network rm webdeploy", "podman network create webdeploy"]


def test_a_network_without_dns_that_hosts_use_is_refused_with_the_command_that_fixes_it(tmp_path):
    result, calls = run(tmp_path, "ensure", network="false", users="web-debian12 index-debian12", installed=DNSNAME)
    assert result.returncode == 1
    assert "These containers use it: web-debian12 index-debian12." in result.stderr
    assert result.stderr.endswith(
        "Remove them with the network (make demo and the tests create them anew), then run make again:\n"
        "    CONTAINERS_CONF=/project/tests/containers.conf podman network rm -f webdeploy\n")
    assert not [c for c in calls if c.startswith(("podman network rm", "podman network create"))], calls

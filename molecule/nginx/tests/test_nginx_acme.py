"""Certificates from an ACME CA (the nginx role's `tls.acme`), against a real one: pebble,
Let's Encrypt's test CA, on nginx-debian13 (tests/sandbox/acme-ca.yml, run by
prepare.yml). Converge gave each host a vhost "certified" for acme.<host>.test, a name
that the CA resolves to that host, where it fetches certbot's challenge over HTTP.

pebble issues 10-day certificates and certbot renews what expires within 30 days, so
every run of Debian's certbot.service (what certbot.timer starts) renews: the tests start
that service, as the timer would. pebble keeps nothing across a restart (accounts, its
root), so the fixture runs everything in order, on both hosts at once, and stops pebble
last; the tests then read what it saw. This module runs after test_nginx.py.
"""

import base64
import json
import os
import re
import subprocess
import time

import pytest
import testinfra
import yaml
from sandbox_support import PROJECT, apply_role
from test_nginx import HOSTS, SCENARIO_DIR, converge_vars, failure_of, request, run, snapshot, vhost

ROOT = "/tmp/webdeploy-acme-root.pem"
METRICS = "/var/lib/prometheus/node-exporter/webdeploy_certbot.prom"
PROBE_SCRIPT = "/usr/local/lib/webdeploy-test/acme-probe.py"
CA_HOST = yaml.safe_load((SCENARIO_DIR / "inventory/hosts.yml").read_text(encoding="utf-8"))[
    "all"]["children"]["acme_ca"]["hosts"]
CA_HOST = next(iter(CA_HOST))

# A client of the vhost over HTTPS that trusts only pebble's root. With --poll it opens
# a new connection for each request until STOP exists, and keeps writing to OUT how many
# requests each certificate (by serial) answered correctly and every failed request.
PROBE = r'''
import json, os, socket, ssl, sys
from cryptography import x509

name, root, out = sys.argv[1:4]
stop = sys.argv[4] if len(sys.argv) > 4 else None
context = ssl.create_default_context(cafile=root)
served, failures, issuer = {}, [], ""
while True:
    try:
        with socket.create_connection(("127.0.0.1", 443), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
                serial, issuer = format(cert.serial_number, "x"), cert.issuer.rfc4514_string()
                tls.sendall(f"GET /hello.txt HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
        if data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nhello from disk\n"):
            served[serial] = served.get(serial, 0) + 1
        else:
            failures.append(f"{serial}: {data[:120]!r}")
    except Exception as error:  # every failed request is reported, none raised
        failures.append(repr(error))
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"served": served, "failures": failures, "issuer": issuer}, f)
    os.replace(out + ".tmp", out)
    if stop is None or os.path.exists(stop):
        break
'''


def name_of(host_name):
    return f"acme.{host_name}.test"


def probe_once(host):
    """One HTTPS request to the host's ACME vhost: {"served": {serial: 1}, "failures", "issuer"}."""
    out = "/tmp/webdeploy-acme-probe.json"
    result = run(host, f"python3 {PROBE_SCRIPT} {name_of(host.backend.host)} {ROOT} {out} && cat {out}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def metrics(host):
    """{metric line without its value: value} of the certbot metrics file."""
    result = run(host, f"cat {METRICS}")
    assert result.rc == 0, result.stderr
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in result.stdout.splitlines() if line and not line.startswith("#")}


def not_after(host):
    result = run(host, "date -d \"$(openssl x509 -noout -enddate -in /etc/letsencrypt/live/certified/cert.pem"
                       " | cut -d= -f2)\" +%s")
    assert result.rc == 0, result.stderr
    return int(result.stdout)


def certbot_run(host):
    """Start certbot.service as certbot.timer does; its exit, result and journal."""
    since = run(host, "date +%s").stdout.strip()
    started = run(host, "systemctl start certbot.service")
    return {"rc": started.rc,
            "result": run(host, "systemctl show -P Result certbot.service").stdout.strip(),
            "failed": run(host, "systemctl is-failed certbot.service").stdout.strip(),
            "journal": run(host, f"journalctl -u certbot.service --since @{since} --no-pager -o cat").stdout}


def renew_while_polling(hosts):
    """Start a poller on each host, renew on each host while they run, then stop them."""
    out, stop = "/tmp/webdeploy-acme-poll.json", "/tmp/webdeploy-acme-poll.stop"
    for h in hosts:
        run(h, f"rm -f {out} {stop}; systemctl reset-failed webdeploy-acme-poll")
        started = run(h, f"systemd-run --unit=webdeploy-acme-poll --collect python3 {PROBE_SCRIPT} "
                         f"{name_of(h.backend.host)} {ROOT} {out} {stop}")
        assert started.rc == 0, started.stderr
    for h in hosts:  # each poller has been answered a few times before the renewal
        waited = run(h, f"for i in $(seq 100); do python3 -c 'import json,sys; "
                        f"sys.exit(sum(json.load(open(\"{out}\"))[\"served\"].values()) < 5)' 2>/dev/null && exit 0; "
                        "sleep 0.1; done; exit 1")
        assert waited.rc == 0, f"the poller on {h.backend.host} got no answer"
    renewed = {h.backend.host: certbot_run(h) for h in hosts}
    time.sleep(1)  # the pollers go on after the reload
    polled = {}
    for h in hosts:
        run(h, f"touch {stop}")
        result = run(h, f"for i in $(seq 100); do systemctl is-active -q webdeploy-acme-poll || break; sleep 0.1; done;"
                        f" cat {out}")
        polled[h.backend.host] = json.loads(result.stdout)
    return renewed, polled


@pytest.fixture(name="acme", scope="module")
def fixture_acme():
    """Everything against the CA, in order: issued (converge), renewed under load, then
    renewal with the CA stopped. {host name: {...}} and the CA's root."""
    ca = testinfra.get_host(f"ansible://{CA_HOST}", ansible_inventory=str(SCENARIO_DIR / "inventory"))
    hosts = [testinfra.get_host(f"ansible://{name}", ansible_inventory=str(SCENARIO_DIR / "inventory"))
             for name in HOSTS]
    root = run(ca, "curl -sS --fail https://localhost:15000/roots/0")  # the system trusts pebble's API CA
    assert root.rc == 0 and "BEGIN CERTIFICATE" in root.stdout, root.stderr
    seen = {}
    for h in hosts:  # the tests start certbot.service themselves: no renewal in between
        assert run(h, "systemctl stop certbot.timer").rc == 0
    for h in hosts:
        run(h, f"install -d {PROBE_SCRIPT.rsplit('/', 1)[0]}")
        for path, text in ((ROOT, root.stdout), (PROBE_SCRIPT, PROBE)):
            encoded = base64.b64encode(text.encode()).decode()
            assert run(h, f"echo {encoded} | base64 -d > {path}").rc == 0
        name = name_of(h.backend.host)
        seen[h.backend.host] = {
            "issued": probe_once(h),
            "http": run(h, f"curl -sS -o /dev/null -w '%{{http_code}} %{{redirect_url}}' --resolve {name}:80:127.0.0.1 "
                           f"http://{name}/hello.txt").stdout,
            "challenge": run(h, f"curl -sS -o /dev/null -w '%{{http_code}}' --resolve {name}:80:127.0.0.1 "
                                f"http://{name}/.well-known/acme-challenge/no-such-token").stdout,
            "metrics_issued": metrics(h), "not_after_issued": not_after(h)}

    renewed, polled = renew_while_polling(hosts)
    for h in hosts:
        seen[h.backend.host].update(renewed=renewed[h.backend.host], polled=polled[h.backend.host],
                                    after_renewal=probe_once(h), metrics_renewed=metrics(h),
                                    not_after_renewed=not_after(h))

    # Last: pebble stopped (it would come back as a new CA that knows no account).
    assert run(ca, "systemctl stop pebble").rc == 0
    try:
        for h in hosts:
            seen[h.backend.host].update(ca_down=certbot_run(h), after_failure=probe_once(h),
                                        metrics_failed=metrics(h))
    finally:
        run(ca, "systemctl start pebble")
        for h in hosts:
            run(h, "systemctl start certbot.timer")
    return seen


def test_acme_certificate_is_issued_and_served_over_https(host, acme):
    seen = acme[host.backend.host]
    issued = seen["issued"]
    assert issued["failures"] == []  # verified against pebble's root, for the vhost's name
    assert len(issued["served"]) == 1
    assert "Pebble Intermediate" in issued["issuer"]
    assert seen["http"] == f"301 https://{name_of(host.backend.host)}/hello.txt"
    assert seen["challenge"] == "404"  # the challenge path is served on port 80, not redirected
    assert seen["metrics_issued"][
        'webdeploy_tls_certificate_expiry_timestamp_seconds{cert_name="certified"}'] == seen["not_after_issued"]


def test_renewal_serves_a_new_certificate_without_a_failed_request(host, acme):
    seen = acme[host.backend.host]
    renewed = seen["renewed"]
    assert renewed["rc"] == 0 and renewed["result"] == "success", renewed["journal"]
    (old,) = seen["issued"]["served"]
    (new,) = seen["after_renewal"]["served"]
    assert new != old
    polled = seen["polled"]
    assert polled["failures"] == []
    assert sorted(polled["served"]) == sorted([old, new]), polled  # the pollers ran across the reload
    assert min(polled["served"].values()) >= 1 and sum(polled["served"].values()) >= 5, polled
    assert seen["not_after_renewed"] > seen["not_after_issued"]
    assert seen["metrics_renewed"]["webdeploy_certbot_renew_success"] == 1
    assert seen["metrics_renewed"][
        'webdeploy_tls_certificate_expiry_timestamp_seconds{cert_name="certified"}'] == seen["not_after_renewed"]
    assert seen["metrics_renewed"]['webdeploy_tls_certificate_served_latest{cert_name="certified"}'] == 1


def test_failed_renewal_keeps_the_certificate_serving_and_is_reported(host, acme):
    seen = acme[host.backend.host]
    down = seen["ca_down"]
    assert down["rc"] != 0
    assert down["result"] == "exit-code" and down["failed"] == "failed"
    assert "Failed to renew certificate certified with error" in down["journal"], down["journal"]
    assert "certbot renew failed (exit-code, exit status 1); the certificates in use stay in use" in down["journal"]
    after = seen["after_failure"]
    assert after["failures"] == []
    (still,) = after["served"]  # exactly one answered request (an empty record fails here)
    (renewed,) = seen["after_renewal"]["served"]
    assert still == renewed  # the renewed certificate, still served
    assert seen["metrics_failed"]["webdeploy_certbot_renew_success"] == 0
    assert (seen["metrics_failed"]["webdeploy_certbot_renew_last_run_timestamp_seconds"]
            > seen["metrics_renewed"]["webdeploy_certbot_renew_last_run_timestamp_seconds"])


def test_a_ca_that_cannot_be_reached_fails_the_run_and_the_vhost_stays_on_http(host, scenario_dir):
    """A new ACME vhost whose CA does not answer: the run fails with certbot's words, the
    vhost is served on port 80 without a TLS server (nginx never points at a missing
    certificate), and the other vhosts keep serving."""
    name = host.backend.host
    role_vars = converge_vars(scenario_dir)
    pending = {"name": "pending", "server_names": [f"pending.{name}.test"],
               "static": [{"location": "/", "path": "/srv/apps/shop/current/static"}],
               "tls": {"acme": {"directory": f"https://{CA_HOST}:14999/dir"}}, "https_redirect": True}
    role_vars["nginx_vhosts"].append(pending)
    try:
        result = apply_role(scenario_dir, "nginx", role_vars, "--limit", name)
        assert result.returncode != 0, result.stdout[-3000:]
        assert (f"certbot could not obtain the certificate of nginx vhost pending (pending.{name}.test; no certificate "
                f"yet) from "
                f"https://{CA_HOST}:14999/dir: it is served over HTTP only (port 80) until it has one. Check that each "
                "name resolves to this host and that the CA reaches its port 80. certbot said:"
                ) in failure_of(result, name), result.stdout[-3000:]
        assert "Connection refused" in failure_of(result, name)
        assert run(host, "nginx -t").rc == 0
        assert run(host, "grep -c 'listen 443' /etc/nginx/sites-enabled/pending.conf").stdout.strip() == "0"
        http = request(host, f"http://pending.{name}.test/hello.txt")
        assert (http.status, http.body) == (200, "hello from disk\n")
        shop = request(host, "https://shop.test/static/hello.txt")
        assert shop.status == 200
    finally:
        role_vars["nginx_vhosts"][-1] = {"name": "pending", "state": "absent"}
        removed = apply_role(scenario_dir, "nginx", role_vars, "--limit", name)
        assert removed.returncode == 0, removed.stdout[-3000:]


def test_switching_a_https_vhost_to_acme_never_drops_its_https(host, scenario_dir):
    """blog serves HTTPS with an operator's pair. Switched to ACME alone, the run refuses
    before changing anything (it would serve HTTP only until the certificate exists).
    With the pair kept beside acme, the pair serves meanwhile: here the CA cannot be
    reached, the run fails with certbot's words, and blog still answers over HTTPS."""
    name = host.backend.host
    unreachable = {"directory": f"https://{CA_HOST}:14999/dir"}
    before = snapshot(host)
    alone = converge_vars(scenario_dir)
    vhost(alone, "blog")["tls"] = {"acme": unreachable}
    refused = apply_role(scenario_dir, "nginx", alone, "--limit", name)
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert (f"nginx vhosts blog serve HTTPS now, but their ACME certificate is not on {name} yet: this run would "
            "serve them over HTTP only until certbot has it") in failure_of(refused, name), refused.stdout[-3000:]
    assert snapshot(host) == before

    kept = converge_vars(scenario_dir)
    vhost(kept, "blog")["tls"] = {"acme": unreachable, **vhost(kept, "blog")["tls"]}
    try:
        failed = apply_role(scenario_dir, "nginx", kept, "--limit", name)
        assert failed.returncode != 0, failed.stdout[-3000:]
        assert (f"certbot could not obtain the certificate of nginx vhost blog (blog.test; no certificate yet) from "
                f"https://{CA_HOST}:14999/dir: it keeps the certificate and key given beside acme until it has one."
                ) in failure_of(failed, name), failed.stdout[-3000:]
        assert request(host, "https://blog.test/healthz").body == "healthy"
        assert run(host, "nginx -t").rc == 0
    finally:
        restored = apply_role(scenario_dir, "nginx", converge_vars(scenario_dir), "--limit", name)
        assert restored.returncode == 0, restored.stdout[-3000:]


def eab_key():
    """The sandbox CA's EAB HMAC key, read through Ansible (it is vaulted)."""
    out = subprocess.run([str(PROJECT / ".venv/bin/ansible"), "localhost", "-m", "ansible.builtin.debug",
                          "-a", "var=sandbox_acme_eab_hmac_key", "-e", f"@{PROJECT}/tests/sandbox/acme-vars.yml",
                          "-o"], capture_output=True, text=True, cwd=PROJECT, env=os.environ, check=False)
    found = re.search(r'"sandbox_acme_eab_hmac_key": "([A-Za-z0-9_=-]+)"', out.stdout)
    assert found and len(found.group(1)) >= 20, out.stdout + out.stderr
    return found.group(1)


def test_the_eab_key_appears_in_no_output_even_when_a_check_fails(host, scenario_dir):
    """A check that fails on the ACME vhost prints the vhost (its item), and -vv prints
    every item: the key shows as (secret), in the output and in ansible-runner's events
    (what AWX keeps)."""
    key = eab_key()
    role_vars = converge_vars(scenario_dir)
    vhost(role_vars, "certified")["headers"] = {"X-Bad": "one\ntwo"}
    before = snapshot(host)
    result = apply_role(scenario_dir, "nginx", role_vars, "--limit", host.backend.host, "-vv")
    assert result.returncode != 0, result.stdout[-3000:]
    assert "header values are one line" in " ".join(result.stdout.split())
    assert '"eab_hmac_key": "(secret)"' in result.stdout or "eab_hmac_key: (secret)" in result.stdout, \
        result.stdout[-3000:]
    assert key not in result.stdout
    assert key not in json.dumps(result.events)
    assert snapshot(host) == before

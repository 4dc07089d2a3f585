"""Metrics, alerts and error tracking, last (after test_stack_input.py): the exporters
answer the monitor host and no one else, Prometheus scrapes every target the inventory
names, nginx's answers per app and status reach it, a deploy shows its version there,
and stopping an app's watcher makes the app-down alert fire in Alertmanager (asked
through its API). Errors raised in the app reach Sentry (a recorder of its protocol on
the monitor host, tests/sentry_recorder.py) with their release and environment, and
each deploy records itself there, without ever failing for it.

The stack's monitor host scrapes and evaluates every 5 s, and the app-down alert waits
10 s (inventory/group_vars/monitor): the waits below are bounded polls, not timings.
"""

import json
import re
import time
import urllib.parse

import pytest
import testinfra
from stack_support import WEB, deploy, get, serving

MONITOR = "stack-monitor"
INDEX = "stack-index"
# The exporters' ports (exporters role defaults): node, nginx, mtail.
PORTS = {"node": 9100, "nginx": 9113, "mtail": 3903}


@pytest.fixture(name="hosts", scope="module")
def fixture_hosts(scenario_dir):
    return {name: testinfra.get_host(f"ansible://{name}?ansible_inventory={scenario_dir}/inventory")
            for name in [*WEB, INDEX, MONITOR]}


def curl(host, url):
    """(curl's exit status, HTTP status, body) of a GET from `host`."""
    out = host.run(f"curl -s -m 5 -o /tmp/curl-body -w '%{{http_code}}' {url}; rc=$?; echo; echo $rc; cat /tmp/curl-body")
    status, rc, body = (out.stdout.split("\n", 2) + ["", ""])[:3]
    return int(rc), status, body


def query(monitor, expr):
    """Prometheus's instant vector for `expr`: [(labels, value)]."""
    rc, status, body = curl(monitor, f"'http://127.0.0.1:9090/api/v1/query?query={urllib.parse.quote(expr)}'")
    assert rc == 0 and status == "200", (rc, status, body)
    return [(r["metric"], float(r["value"][1])) for r in json.loads(body)["data"]["result"]]


def poll(what, probe, timeout=90, every=2):
    """probe()'s first truthy result within `timeout` seconds; fails saying `what` and the
    last result otherwise."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout} s; last: {last!r}")


def test_the_exporters_answer_the_monitor_host_and_no_one_else(hosts):
    for name in WEB:
        for job, port in PORTS.items():
            rc, status, body = curl(hosts[MONITOR], f"http://{name}:{port}/metrics")
            assert (rc, status) == (0, "200"), f"{MONITOR} -> {name}:{port} ({job}): {rc} {status}"
            assert {"node": "node_cpu_seconds_total", "nginx": "nginx_up 1",
                    "mtail": "webdeploy_nginx_requests_total"}[job] in body, f"{name} {job}: {body[:500]}"
            # The other web host and the index host are refused (curl: 7, could not connect).
            for other in [n for n in [*WEB, INDEX] if n != name]:
                rc, status, _ = curl(hosts[other], f"http://{name}:{port}/metrics")
                assert (rc, status) == (7, "000"), f"{other} -> {name}:{port} ({job}) got through: {rc} {status}"
    # The node exporter of the index host too, from the monitor host only.
    assert curl(hosts[MONITOR], f"http://{INDEX}:9100/metrics")[:2] == (0, "200")
    assert curl(hosts[WEB[0]], f"http://{INDEX}:9100/metrics")[:2] == (7, "000")


def test_the_exporters_run_as_their_own_users(hosts):
    for name in WEB:
        users = {p.args.split()[0].rsplit("/", 1)[-1]: p.user
                 for p in hosts[name].process.filter(comm="prometheus-node")
                 + hosts[name].process.filter(comm="prometheus-ngin") + hosts[name].process.filter(comm="mtail")}
        assert users == {"prometheus-node-exporter": "prometheus", "prometheus-nginx-exporter": "prometheus",
                         "mtail": "mtail"}, f"{name}: {users}"


def test_prometheus_scrapes_every_target_of_the_inventory(hosts):
    expected = ({("node", h) for h in [*WEB, INDEX, MONITOR]} | {(j, h) for j in ("nginx", "mtail") for h in WEB}
                | {("prometheus", MONITOR), ("alertmanager", MONITOR)})
    probes = {(h, app) for h in WEB for app in ("webxample", "shop")}

    def targets():
        rc, status, body = curl(hosts[MONITOR], "http://127.0.0.1:9090/api/v1/targets")
        active = json.loads(body)["data"]["activeTargets"]
        up = {(t["labels"]["job"], t["labels"]["host"]) for t in active if t["health"] == "up"}
        health = {(t["labels"]["host"], t["labels"]["app"]) for t in active if t["labels"]["job"] == "health"}
        got = ({t for t in up if t[0] != "health"}, health)
        return got if got == (expected, probes) and len(active) == len(expected) + len(probes) else None

    poll("every target up", targets)
    # Each app answers its health probe through nginx.
    found = {(m["host"], m["app"]): v for m, v in query(hosts[MONITOR], 'probe_success{job="health"}')}
    assert found == {p: 1.0 for p in probes}


def test_nginx_answers_per_app_and_status_reach_prometheus(hosts):
    name = WEB[0]
    expr = f'sum(webdeploy_nginx_requests_total{{host="{name}", app="shop", status="404"}})'
    before = sum(v for _, v in query(hosts[MONITOR], expr))
    for _ in range(7):
        assert get(hosts[name], "/no-such-page", "shop.test")[0] == 404
    poll("7 more 404s of shop", lambda: sum(v for _, v in query(hosts[MONITOR], expr)) == before + 7)


@pytest.fixture(name="deployed", scope="module")
def fixture_deployed(scenario_dir, hosts):
    """shop deployed to a version it does not serve yet (the earlier modules leave it on
    one of these two)."""
    now = {serving(hosts[h], "shop.test") for h in WEB}
    target = "1.0.0" if "1.0.0" not in now else "1.1.0"
    return target, deploy(scenario_dir, target, "shop")


def test_a_deploy_shows_its_version_in_prometheus(hosts, deployed):
    target, result = deployed
    assert result.returncode == 0, result.stdout[-3000:]

    def versions():
        got = {m["host"]: m["version"] for m, v in query(hosts[MONITOR], 'webdeploy_release_info{app="shop"}') if v == 1}
        return got if got == {h: target for h in WEB} else None

    poll(f"shop {target} in Prometheus on {', '.join(WEB)}", versions)
    last = {m["host"]: (m["action"], m["version"], v)
            for m, v in query(hosts[MONITOR], 'webdeploy_last_deploy_success{app="shop"}')}
    assert last == {h: ("deploy", target, 1.0) for h in WEB}


def alerts(monitor, name):
    """Alertmanager's active alerts called `name`, through its API v2: [labels]."""
    filt = urllib.parse.quote(f'alertname="{name}"')
    rc, status, body = curl(monitor, f"'http://127.0.0.1:9093/api/v2/alerts?active=true&filter={filt}'")
    assert rc == 0 and status == "200", (rc, status, body)
    return [a["labels"] for a in json.loads(body)]


def test_stopping_an_app_fires_the_app_down_alert_in_alertmanager(hosts, deployed):
    name, web = WEB[0], hosts[WEB[0]]
    assert alerts(hosts[MONITOR], "WebdeployAppDown") == []
    # Circus keeps the socket: requests wait in its queue, and the probe times out.
    web.check_output("circusctl stop shop")
    try:
        fired = poll("WebdeployAppDown in Alertmanager", lambda: alerts(hosts[MONITOR], "WebdeployAppDown"), timeout=120)
        assert [(a["app"], a["host"], a["severity"]) for a in fired] == [("shop", name, "critical")], fired
    finally:
        web.check_output("circusctl start shop")
    poll("shop answering again", lambda: get(web, "/healthz", "shop.test")[0] == 200, timeout=60)
    poll("WebdeployAppDown resolved", lambda: alerts(hosts[MONITOR], "WebdeployAppDown") == [], timeout=120)


# --- error tracking (the recorder stands in for Sentry: tests/sentry_recorder.py) -----

def sentry_records(monitor):
    return [json.loads(line) for line in monitor.check_output("curl -s http://127.0.0.1:9000/records").splitlines()]


def test_an_error_in_the_app_reaches_sentry_with_its_release_and_environment(hosts, deployed):
    target, _ = deployed
    name, web = WEB[0], hosts[WEB[0]]
    expected = {"kind": "event", "project": "7", "sentry_key": "stackpublickey", "release": f"shop@{target}",
                "environment": "stack", "level": "error", "server_name": name,
                "exceptions": [{"type": "DeliberateError", "value": f"webxample {target}: deliberate error from GET /_error"}]}

    def ours():
        return [{k: r.get(k) for k in expected} for r in sentry_records(hosts[MONITOR])
                if r["kind"] == "event" and r["exceptions"] == expected["exceptions"] and r["server_name"] == name]

    before = len(ours())
    assert get(web, "/_error", "shop.test")[0] == 500
    got = poll("the error in the recorder", lambda: ours() if len(ours()) > before else None, timeout=60)
    assert got[before:] == [expected]


def test_each_deploy_is_recorded_in_sentry(hosts, deployed):
    target, result = deployed
    text = " ".join(result.stdout.split())
    assert f"Recorded in Sentry: shop@{target} deployed to stack." in text, text[-3000:]
    records = [{k: v for k, v in r.items() if k != "time"} for r in sentry_records(hosts[MONITOR])]
    releases = [r for r in records if r["kind"] == "release" and r["version"] == f"shop@{target}"]
    deploys = [r for r in records if r["kind"] == "deploy" and r["version"] == f"shop@{target}"]
    assert releases and releases[-1] == {"kind": "release", "org": "webdeploy-stack", "version": f"shop@{target}",
                                         "projects": ["shop"]}
    assert deploys and deploys[-1]["environment"] == "stack" and deploys[-1]["projects"] == ["shop"], deploys
    assert re.fullmatch(rf"\S+ -> {re.escape(target)} by \S+, job -", deploys[-1]["name"]), deploys[-1]
    assert not [r for r in records if r["kind"] == "refused"], records


def test_a_sentry_that_cannot_be_reached_never_fails_a_deploy(scenario_dir, deployed):
    target, _ = deployed
    result = deploy(scenario_dir, target, "shop", "-e", "release_sentry_url=http://127.0.0.1:1")
    assert result.returncode == 0, result.stdout[-3000:]
    text = " ".join(result.stdout.split())
    assert (f"Could not record the deploy of shop@{target} in Sentry"
            " (http://127.0.0.1:1/api/0/organizations/webdeploy-stack): ") in text, text[-3000:]
    assert "The deploy itself is done; nothing else depends on this record." in text


# --- logs shipped to the monitor host -----------------------------------------------

LOG_LINES = 600  # requests, one request line each in the app's stdout.log


def marker_counts(host, files, run):
    """{request number: how many lines carry it} over `files` (a shell glob) on `host`."""
    out = host.check_output(f"cat {files} 2>/dev/null | grep -o 'logtest={run}-[0-9]*' | sort | uniq -c || true")
    return {int(marker.rsplit("-", 1)[1]): int(count) for count, marker in (line.split() for line in out.splitlines())}


def test_the_apps_request_lines_arrive_on_the_monitor_host_exactly_once(hosts):
    # The app writes LOG_LINES request lines (30 a second) while, in turn, logrotate renames
    # its logs (Circus reopens them), the shipper (rsyslog on the web host) restarts and the
    # receiver (rsyslog on the monitor host) restarts. Each line must then be on the
    # monitor host once: none lost (disk-assisted queues, read positions kept) and none
    # twice (RELP re-sends what was not acknowledged; the receiver's writer drops ids it has).
    web, monitor, run = hosts[WEB[0]], hosts[MONITOR], f"r{int(time.time())}"
    web.check_output(
        f"systemd-run --unit=stack-logtest-{run} --collect bash -c 'for i in $(seq 1 {LOG_LINES}); do "
        f"curl -s -o /dev/null -H \"Host: webxample.test\" \"http://127.0.0.1/healthz?logtest={run}-$i\"; "
        f"sleep 0.03; done; touch /run/stack-logtest-{run}.done'")
    time.sleep(4)
    web.check_output("logrotate -f /etc/logrotate.d/webxample")
    time.sleep(4)
    web.check_output("systemctl restart rsyslog.service")
    time.sleep(4)
    # The receiver stays away for a few seconds: lines pile up in the shipper's queue, and
    # those in flight when it stopped are sent again.
    monitor.check_output("systemctl stop rsyslog.service")
    time.sleep(5)
    monitor.check_output("systemctl start rsyslog.service")
    poll("the request lines written", lambda: web.file(f"/run/stack-logtest-{run}.done").exists, timeout=180)

    expected = dict.fromkeys(range(1, LOG_LINES + 1), 1)
    written = marker_counts(web, "/var/log/webxample/stdout.log /var/log/webxample/stdout.log.1", run)
    assert written == expected, f"the app wrote {len(written)} distinct request lines of {LOG_LINES}"
    kept = f"/var/log/remote/{WEB[0]}/webxample/stdout.log"
    deadline = time.monotonic() + 120  # a bounded wait for the queues to drain, not a timing
    while len(marker_counts(monitor, kept, run)) < LOG_LINES and time.monotonic() < deadline:
        time.sleep(2)
    time.sleep(5)  # then a late copy of any line would have landed too
    arrived = marker_counts(monitor, kept, run)
    missing = sorted(set(expected) - set(arrived))
    twice = {n: c for n, c in arrived.items() if c != 1}
    assert arrived == expected, f"missing {len(missing)}: {missing[:20]}; more than once: {twice}"
    # The receiver's own account of re-sent lines it did not write again (it can be 0).
    dropped = monitor.check_output("cat /var/lib/webdeploy/log-receiver-seen.json.journal 2>/dev/null "
                                   "| grep -c '^drop' || true")
    print(f"request lines: {LOG_LINES} written, {LOG_LINES} arrived once; re-sent lines the receiver "
          f"did not write again since its last fold: {dropped}")


def test_only_the_web_hosts_reach_the_log_receiver(hosts):
    # RELP has no authentication of its own: the receiver's firewall table (role
    # port_allowlist) lets the web hosts in and resets the index host's connection (curl 7).
    for name in WEB:
        rc, _, _ = curl(hosts[name], f"http://{MONITOR}:2514/")
        assert rc not in (7, 28), f"{name} could not connect to the log receiver: curl exit {rc}"
    assert curl(hosts[INDEX], f"http://{MONITOR}:2514/")[0] == 7, "the index host got through to the log receiver"


def test_nginx_logs_and_both_hosts_are_kept_per_host_and_app(hosts):
    # Every web host ships each app's logs (Circus's stdout and stderr, nginx's access log;
    # nginx's error log too, empty here) to <host>/<app>/<source>.log, group adm like /var/log.
    monitor = hosts[MONITOR]
    for name in WEB:
        status, _ = get(hosts[name], f"/healthz?logtest=nginx-{name}", "shop.test")
        assert status == 200
        access = f"/var/log/remote/{name}/shop/access.log"
        poll(f"shop's request in {access}",
             lambda access=access, name=name: f"logtest=nginx-{name} " in monitor.file(access).content_string
             if monitor.file(access).exists else False, timeout=60)
        for app in ("webxample", "shop"):
            for source in ("stdout", "stderr", "access"):
                kept = monitor.file(f"/var/log/remote/{name}/{app}/{source}.log")
                assert kept.exists and kept.group == "adm" and kept.mode == 0o640, f"{name} {app} {source}"

"""Behaviour of the `nginx` role on a converged host (see ../converge.yml).

Every request is made from inside the container with curl or openssl (slow clients and
the response headers as sent, repeated ones included: small Python scripts, SLOW_CLIENTS
and RAW_CLIENT), to nginx on the loopback. The applications behind nginx are small
Python HTTP servers started by the `upstreams` fixture: one on 127.0.0.1:8001 ("shop"),
one on a unix socket ("blog"). Each answers every request with JSON describing what it
received, and on which of nginx's connections to it ("/sleep/<seconds>" first sleeps: a slow
application; "/app-headers?<name>=<value>&..." also sends those response headers, as an app
with its own security headers does). They keep a connection open when nginx asks for it
(HTTP/1.1 without "Connection: close"), as gunicorn's gthread workers do.
"""

import base64
import copy
import json
import re
import shlex
import uuid
from collections import namedtuple
from pathlib import Path
from urllib.parse import urlencode

import pytest
import testinfra
import yaml
from sandbox_support import apply_role, assert_check_mode_clean, check_once

SCENARIO_DIR = Path(__file__).resolve().parent.parent
HOSTS = sorted(yaml.safe_load((SCENARIO_DIR / "inventory/hosts.yml").read_text(encoding="utf-8"))["all"]["hosts"])

CERT = "/etc/ssl/certs/webdeploy-test.pem"
STATIC = "/srv/apps/shop/current/static"
UPSTREAM_SCRIPT = "/usr/local/lib/webdeploy-test/upstream.py"
UPSTREAMS = {  # unit name: (app name, kind, address)
    "webdeploy-test-shop": ("shop", "tcp", "8001"),
    "webdeploy-test-blog": ("blog", "unix", "/run/webdeploy-test/blog.sock"),
}

# The application stand-in. It tells systemd it is ready only once it listens
# (Type=notify), so `systemd-run` returns when requests can be served.
UPSTREAM = r'''
import itertools, json, os, socket, socketserver, sys, time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

NAME, KIND, ADDRESS = sys.argv[1:4]
CONNECTIONS = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    # Keeps the connection open after a response unless nginx sent HTTP/1.0 or
    # "Connection: close" (what nginx does without upstream keepalive).
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection_number = next(CONNECTIONS)  # one handler per connection from nginx

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length else b""
        if self.path.startswith("/sleep/"):  # a slow application: /sleep/<seconds>
            time.sleep(float(self.path.split("/")[2]))
        body = json.dumps({"upstream": NAME, "method": self.command, "path": self.path,
                           "version": self.request_version, "connection": self.connection_number,
                           "headers": dict(self.headers.items()),
                           "body_length": len(received)}).encode()
        url = urlsplit(self.path)
        own_headers = parse_qsl(url.query) if url.path == "/app-headers" else []
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in own_headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # nginx gave up waiting (proxy_read_timeout)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if KIND == "tcp":
    server = TCPServer(("127.0.0.1", int(ADDRESS)), Handler)
else:
    os.makedirs(os.path.dirname(ADDRESS), exist_ok=True)
    if os.path.exists(ADDRESS):
        os.unlink(ADDRESS)
    server = UnixServer(ADDRESS, Handler)
    os.chmod(ADDRESS, 0o666)  # nginx's workers (www-data) connect to it

notify = os.environ["NOTIFY_SOCKET"]
ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ready.connect("\0" + notify[1:] if notify.startswith("@") else notify)
ready.sendall(b"READY=1")
server.serve_forever()
'''

# Slow clients, run inside the container against nginx on the loopback (python3 is on
# every host). Reads a JSON list of cases on stdin, runs them all at once (one thread
# each) and prints {case name: what happened} as JSON. Two kinds of case:
#   stall         send `send` (then `trickle` every `every` seconds, if given) and wait
#                 until nginx ends the connection, at most `limit` seconds after connecting
#   stop_reading  send `send`, read the response headers, stop reading for up to `limit`
#                 seconds or until nginx ends the connection, then read what is left
# Times are measured in the container: from the connect, and from the last byte of
# `send` ("stalled"). A connection ends by a close ("closed") or a reset (the name of the
# Python exception); "still open" when the limit passed first.
SLOW_CLIENTS = r'''
import json, socket, ssl, sys, threading, time

CERT = sys.argv[1]
TCP_ESTABLISHED = 1


def connect(case):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if case.get("rcvbuf"):  # a small receive window: what is not read stays at nginx
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, case["rcvbuf"])
    sock.connect(("127.0.0.1", case["port"]))
    if case.get("tls"):
        context = ssl.create_default_context(cafile=CERT)
        context.set_alpn_protocols(["http/1.1"])
        sock = context.wrap_socket(sock, server_hostname=case["tls"])
    return sock


def receive(sock):
    # b"" at a close; the name of the exception at a reset or an abrupt TLS end.
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, TimeoutError):  # no data yet (say, only a TLS 1.3 ticket)
        return None
    except OSError as error:
        return type(error).__name__


def stall(case, start, sock):
    stalled = time.monotonic()
    sock.settimeout(0.1)
    received, outcome, trickled = b"", "still open", 0
    next_trickle = stalled + case.get("every", 0)
    while time.monotonic() - start < case["limit"]:
        if case.get("trickle") and time.monotonic() >= next_trickle:
            try:
                sock.sendall(case["trickle"].encode())
            except OSError as error:
                outcome = type(error).__name__
                break
            trickled += 1
            next_trickle += case["every"]
        data = receive(sock)
        if data is None:
            continue
        if isinstance(data, str) or not data:
            outcome = data or "closed"
            break
        received += data
    end = time.monotonic()
    return {"outcome": outcome, "after_connect": end - start, "after_stall": end - stalled,
            "trickled": trickled, "received": received.decode("latin-1")[:300]}


def stop_reading(case, start, sock):
    sock.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        data = receive(sock)
        if not isinstance(data, bytes) or not data:
            return {"outcome": "no response", "received": head.decode("latin-1")}
        head += data
    head, _, body = head.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    # Not reading: nginx's writes stall. The kernel tells when nginx ends the connection.
    stalled = time.monotonic()
    ended_after = None
    while time.monotonic() - stalled < case["limit"]:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        if state != TCP_ESTABLISHED:
            ended_after = time.monotonic() - stalled
            break
        time.sleep(0.05)
    received = len(body)
    while True:
        data = receive(sock)
        if data is None or isinstance(data, str) or not data:
            outcome = "still open" if data is None else data or "closed"
            break
        received += len(data)
    return {"outcome": outcome, "status_line": head.split(b"\r\n")[0].decode("latin-1"),
            "content_length": length, "received": received, "ended_after": ended_after}


def run(case, results):
    start = time.monotonic()
    try:
        sock = connect(case)
        if case.get("send"):
            sock.sendall(case["send"].encode())
        results[case["name"]] = (stall if case["kind"] == "stall" else stop_reading)(case, start, sock)
    except Exception as error:  # reported, not raised: the test shows it
        results[case["name"]] = {"outcome": "client error: %r" % error}


results = {}
threads = [threading.Thread(target=run, args=(case, results)) for case in json.load(sys.stdin)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(results))
'''

Response = namedtuple("Response", "rc status headers body stderr")


def run(host, command):
    with host.sudo():
        return host.run(command)


def request(host, url, *options, body=True, loopback=True):
    """curl `url` inside the container (with `loopback`, every name goes to 127.0.0.1).

    Returns Response(rc, status, headers (lower-case names), body, stderr); status is
    None when nginx gave no answer (curl's rc tells why).
    """
    output = "-i" if body else "-o /dev/null -D -"
    command = (f"curl -sS {output} --max-time 20 --cacert {CERT} "
               + ("--connect-to ::127.0.0.1: " if loopback else "")
               + " ".join(shlex.quote(o) for o in options) + " " + shlex.quote(url))
    result = run(host, command)
    if result.rc != 0:
        return Response(result.rc, None, {}, "", result.stderr)
    text = result.stdout
    while True:
        head, _, text = text.partition("\r\n\r\n")
        status = int(head.split(None, 2)[1])
        if status != 100:
            break
    headers = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(result.rc, status, headers, text, result.stderr)


def assert_closed_without_answer(response):
    """nginx's catch-all closed the connection (return 444): no HTTP answer at all."""
    # 52: empty reply, 56: connection reset. Not 7: nothing listening would be a failure.
    assert response.status is None and response.rc in (52, 56), response


def assert_tls_refused(response):
    """The TLS handshake was rejected (curl 35), as the catch-all does for unknown names."""
    assert response.status is None and response.rc == 35, response


def app(response):
    """The JSON an upstream answered, or None if the answer did not come from one."""
    try:
        data = json.loads(response.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "upstream" in data else None


def tls_handshake(host, *options, server_name="shop.test"):
    """openssl s_client against nginx on 127.0.0.1:443; stdout and stderr merged."""
    command = ("openssl s_client -connect 127.0.0.1:443 -servername " + shlex.quote(server_name)
               + f" -CAfile {CERT} -verify_return_error "
               + " ".join(shlex.quote(o) for o in options) + " < /dev/null 2>&1")
    return run(host, command)


def nginx_processes(host):
    """(master PID, set of worker PIDs)."""
    master = run(host, "cat /run/nginx.pid").stdout.strip()
    workers = run(host, f"pgrep -P {master} -f 'worker process$'").stdout.split()
    return master, set(workers)


def converge_vars(scenario_dir):
    """The role variables converge.yml sets, to re-apply them with changes."""
    play = yaml.safe_load((Path(scenario_dir) / "converge.yml").read_text(encoding="utf-8"))[0]
    role = dict(play["roles"][0])
    del role["role"]
    return copy.deepcopy(role)


def vhost(role_vars, name):
    return next(v for v in role_vars["nginx_vhosts"] if v["name"] == name)


def every_host():
    """testinfra hosts for every host of the scenario, for changes applied to all at once."""
    return [testinfra.get_host(f"ansible://{name}", ansible_inventory=str(SCENARIO_DIR / "inventory"))
            for name in HOSTS]


def failure_of(result, name):
    """What a play reported for host `name` when the host failed (whitespace normalised)."""
    match = re.search(rf"^fatal: \[{re.escape(name)}\]: FAILED! => ?\n((?:[ \t].*\n?)*)", result.stdout, re.M)
    return " ".join(match.group(1).split()) if match else ""


@pytest.fixture(name="upstreams", scope="module")
def fixture_upstreams():
    """Start the two application stand-ins on every host, for the tests of this module
    (the tests that change the role's input apply it to every host at once)."""
    hosts = every_host()
    script = base64.b64encode(UPSTREAM.encode()).decode()
    for host in hosts:
        run(host, f"install -d {Path(UPSTREAM_SCRIPT).parent} && echo {script} | base64 -d > {UPSTREAM_SCRIPT}")
        for unit, args in UPSTREAMS.items():
            run(host, f"systemctl stop {unit}; systemctl reset-failed {unit}")
            started = run(host, f"systemd-run --unit={unit} --service-type=notify --collect "
                                f"/usr/bin/python3 {UPSTREAM_SCRIPT} {' '.join(args)}")
            assert started.rc == 0, started.stderr
    yield
    for host in hosts:
        for unit in UPSTREAMS:
            run(host, f"systemctl stop {unit}")


# --- serving ---------------------------------------------------------------------------

def test_nginx_runs_enabled_with_a_valid_configuration(host):
    assert host.service("nginx").is_running
    assert host.service("nginx").is_enabled
    assert run(host, "nginx -t").rc == 0
    # Debian's default site is gone: the catch-all answers for unknown names instead.
    assert not host.file("/etc/nginx/sites-enabled/default").exists


@pytest.mark.usefixtures("upstreams")
def test_https_request_reaches_the_tcp_upstream_with_proxy_headers(host):
    response = request(host, "https://shop.test/orders?page=2",
                       "-H", "X-Forwarded-For: 203.0.113.9", "-H", "Proxy: http://evil.test")
    assert response.status == 200, response
    answer = app(response)
    assert answer and answer["upstream"] == "shop", response.body
    assert answer["path"] == "/orders?page=2"
    sent = {k.lower(): v for k, v in answer["headers"].items()}
    assert sent["host"] == "shop.test"
    assert sent["x-forwarded-proto"] == "https"
    assert sent["x-forwarded-host"] == "shop.test"
    # nginx is the edge: a client cannot make the app believe it comes from elsewhere.
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert sent["x-real-ip"] == "127.0.0.1"
    assert "proxy" not in sent


@pytest.mark.usefixtures("upstreams")
def test_unix_socket_upstream_over_http_ipv4_and_ipv6(host):
    for url in ("http://127.0.0.1/posts", "http://[::1]/posts"):
        response = request(host, url, "-g", "-H", "Host: blog.test", loopback=False)
        assert response.status == 200, response
        answer = app(response)
        assert answer and answer["upstream"] == "blog", response.body
        sent = {k.lower(): v for k, v in answer["headers"].items()}
        assert sent["x-forwarded-proto"] == "http"
        assert sent["host"] == "blog.test"


@pytest.mark.usefixtures("upstreams")
def test_static_files_are_served_by_nginx_from_disk(host):
    response = request(host, "https://shop.test/static/hello.txt")
    assert response.status == 200, response
    assert response.body == "hello from disk\n"
    assert app(response) is None
    assert "max-age=604800" in response.headers.get("cache-control", "")
    # a missing file is nginx's 404, not a request to the app
    missing = request(host, "https://shop.test/static/missing.txt")
    assert missing.status == 404
    assert app(missing) is None
    # the prefix ends with a slash: no way out into sibling directories (the URL is the app's)
    sideways = request(host, "https://shop.test/static../current/static/hello.txt")
    assert app(sideways) is not None, sideways


@pytest.mark.usefixtures("upstreams")
def test_static_text_is_compressed(host):
    response = request(host, "https://shop.test/static/site.css", "-H", "Accept-Encoding: gzip", body=False)
    assert response.status == 200, response
    assert response.headers.get("content-encoding") == "gzip"
    plain = request(host, "https://shop.test/static/site.css", body=False)
    assert "content-encoding" not in plain.headers


def test_tls_1_0_and_1_1_are_refused_by_the_server_and_1_2_and_1_3_accepted(host):
    # The client is told to offer TLS 1.0 or 1.1 at security level 0, so any refusal comes
    # from nginx: it answers with a protocol_version alert.
    for version in ("-tls1", "-tls1_1"):
        old = tls_handshake(host, version, "-cipher", "DEFAULT@SECLEVEL=0")
        assert old.rc != 0, old.stdout
        assert "alert protocol version" in old.stdout, old.stdout
    for version, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        ok = tls_handshake(host, version)
        assert ok.rc == 0, ok.stdout
        assert f"New, {name}, Cipher is" in ok.stdout, ok.stdout
        assert "Verify return code: 0 (ok)" in ok.stdout, ok.stdout


def test_tls_1_2_offers_only_forward_secret_aead_ciphers(host):
    # The client offers only what the server must not accept: the server ends the
    # handshake with a handshake_failure alert.
    for offer in ("DEFAULT:AES128-SHA:AES256-SHA@SECLEVEL=0:!ECDHE",  # no forward secrecy
                  # forward secret, but not AEAD: CBC or no encryption, with SHA-1/SHA-2 MACs
                  "ECDHE+SHA1:ECDHE+SHA256:ECDHE+SHA384@SECLEVEL=0"):
        weak = tls_handshake(host, "-tls1_2", "-cipher", offer)
        assert weak.rc != 0, weak.stdout
        assert "alert handshake failure" in weak.stdout, weak.stdout
    # what a current client offers gets an ECDHE suite with AES-GCM or ChaCha20-Poly1305
    ok = tls_handshake(host, "-tls1_2")
    assert re.search(r"New, TLSv1\.2, Cipher is ECDHE-ECDSA-(AES\d+-GCM|CHACHA20-POLY1305)", ok.stdout), ok.stdout


@pytest.mark.usefixtures("upstreams")
def test_http2_is_negotiated(host):
    result = run(host, f"curl -sS -o /dev/null -w '%{{http_version}}' --cacert {CERT} "
                       "--connect-to ::127.0.0.1: https://shop.test/")
    assert result.stdout == "2", result.stdout + result.stderr


def test_http_redirects_to_https_when_asked(host):
    response = request(host, "http://shop.test/orders?page=2")
    assert response.status == 301
    assert response.headers["location"] == "https://shop.test/orders?page=2"


# --- response headers: one owner each ---------------------------------------------------

# Headers must keep their repeats: RAW_CLIENT, run in the container, sends one HTTP/1.1
# request per case over a plain socket (TLS for https) and returns the header lines as
# they came, a list of [name, value] pairs, never a dict. Reads a JSON list of requests
# on stdin and prints a JSON list of {status, headers, body}.
RAW_CLIENT = r'''
import json, socket, ssl, sys

CERT = sys.argv[1]


def fetch(case):
    sock = socket.create_connection(("127.0.0.1", case["port"]), timeout=20)
    if case["tls"]:
        context = ssl.create_default_context(cafile=CERT)
        context.set_alpn_protocols(["http/1.1"])
        sock = context.wrap_socket(sock, server_hostname=case["host"])
    request = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (case["path"], case["host"])
    sock.sendall(request.encode())
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):  # closed without a TLS close_notify
            break
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [[name.strip(), value.strip()] for name, _, value in (line.partition(":") for line in lines[1:])]
    return {"status": int(lines[0].split()[1]), "headers": headers, "body": body.decode("latin-1")}


print(json.dumps([fetch(case) for case in json.load(sys.stdin)]))
'''

# Every header the role adds, per vhost of converge.yml: nginx's value, or None where the
# vhost adds none (blog drops Referrer-Policy; HSTS only on shop, over HTTPS).
ADDED = ("Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
         "X-Served-By", "Content-Security-Policy", "Report-To")
BLOG_CSP = "default-src 'self'; img-src 'self' data:"
BLOG_REPORT_TO = '{"group": "csp", "endpoints": [{"url": "https://blog.test/csp"}]}'
NGINX_VALUES = {
    "shop": dict(zip(ADDED, ("max-age=63072000", "nosniff", "strict-origin-when-cross-origin", "DENY",
                             None, None, None))),
    "blog": dict(zip(ADDED, (None, "nosniff", None, "SAMEORIGIN", "blog", BLOG_CSP, BLOG_REPORT_TO))),
    "down": dict(zip(ADDED, (None, "nosniff", "strict-origin-when-cross-origin", "SAMEORIGIN", None, None, None))),
}
# What an app with its own headers sends (Django's middleware, say): values unlike
# nginx's (except nosniff, the only value there is), and the vhost's other added header.
APP_VALUES = {
    "shop": {"X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "same-origin",
             "X-Content-Type-Options": "nosniff", "Strict-Transport-Security": "max-age=300"},
    "blog": {"X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
             "X-Content-Type-Options": "nosniff", "X-Served-By": "blog-app"},
}
APP_HEADERS_PATH = {name: "/app-headers?" + urlencode(values) for name, values in APP_VALUES.items()}
# case: (vhost, scheme, path, status, who answers, the headers the app sends)
HEADER_CASES = {
    "shop: app sends none": ("shop", "https", "/", 200, "app", {}),
    "shop: app sends its own": ("shop", "https", APP_HEADERS_PATH["shop"], 200, "app", APP_VALUES["shop"]),
    "shop: static file": ("shop", "https", "/static/hello.txt", 200, "nginx", {}),
    "shop: nginx's 404": ("shop", "https", "/static/missing.txt", 404, "nginx", {}),
    "blog: app sends none": ("blog", "https", "/", 200, "app", {}),
    "blog over http: app sends none": ("blog", "http", "/", 200, "app", {}),
    "blog: app sends its own": ("blog", "https", APP_HEADERS_PATH["blog"], 200, "app", APP_VALUES["blog"]),
    "down: nginx's 502": ("down", "http", "/", 502, "nginx", {}),
}
_raw = {}


def raw_responses(host):
    """{case: {status, headers: [[name, value], ...], body}} for every HEADER_CASES case,
    all requested in one go on `host` (once per host)."""
    name = host.backend.host
    if name not in _raw:
        requests = [{"port": 443 if scheme == "https" else 80, "tls": scheme == "https",
                     "host": f"{vhost_name}.test", "path": path}
                    for vhost_name, scheme, path, *_ in HEADER_CASES.values()]
        script = base64.b64encode(RAW_CLIENT.encode()).decode()
        requests = base64.b64encode(json.dumps(requests).encode()).decode()
        result = run(host, f"echo {script} | base64 -d > /tmp/raw_client.py && "
                           f"echo {requests} | base64 -d | python3 /tmp/raw_client.py {CERT}; "
                           "status=$?; rm -f /tmp/raw_client.py; exit $status")
        assert result.rc == 0, result.stderr
        _raw[name] = dict(zip(HEADER_CASES, json.loads(result.stdout)))
    return _raw[name]


def header_values(response, name):
    """Every value of header `name` in a raw response, in order (repeats kept)."""
    return [value for header, value in response["headers"] if header.lower() == name.lower()]


@pytest.mark.usefixtures("upstreams")
@pytest.mark.parametrize("case", HEADER_CASES)
def test_security_and_extra_headers(host, case):
    # Each header the role adds has one owner per response: the app when it sends the
    # header (its value, once), else nginx (its value, once): on proxied responses, on
    # static files, and on nginx's own error pages.
    vhost_name, _, _, status, answered_by, app_sends = HEADER_CASES[case]
    response = raw_responses(host)[case]
    assert response["status"] == status, response
    assert ('"upstream"' in response["body"]) == (answered_by == "app"), response
    expected = {name: [] if value is None else [value]
                for name, value in {**NGINX_VALUES[vhost_name], **app_sends}.items()}
    assert {name: header_values(response, name) for name in expected} == expected, response["headers"]


@pytest.mark.usefixtures("upstreams")
def test_hsts_only_where_enabled(host):
    seen = raw_responses(host)
    for case in ("shop: app sends none", "shop: static file", "shop: nginx's 404"):
        assert header_values(seen[case], "Strict-Transport-Security") == ["max-age=63072000"], seen[case]
    for case in ("blog: app sends none", "blog over http: app sends none", "down: nginx's 502"):
        assert header_values(seen[case], "Strict-Transport-Security") == [], seen[case]
    # blog has no redirect: plain HTTP is served too
    assert app(request(host, "http://blog.test/"))["upstream"] == "blog"


@pytest.mark.usefixtures("upstreams")
def test_server_header_and_error_pages_carry_no_version(host):
    for url in ("https://shop.test/", "http://shop.test/", "https://shop.test/static/missing.txt"):
        response = request(host, url)
        assert response.headers["server"] == "nginx", response
        assert "nginx/" not in response.body


def test_extra_config_is_part_of_the_vhost(host):
    response = request(host, "https://blog.test/healthz")
    assert response.status == 200
    assert response.body == "healthy"


@pytest.mark.usefixtures("upstreams")
def test_request_bodies_are_limited_per_vhost(host):
    run(host, "head -c 2000000 /dev/zero > /tmp/two-megabytes && head -c 500000 /dev/zero > /tmp/half-megabyte")
    small = request(host, "https://shop.test/upload", "--data-binary", "@/tmp/half-megabyte")
    assert small.status == 200
    assert app(small)["body_length"] == 500000  # buffered by nginx, passed on whole
    large = request(host, "https://shop.test/upload", "--data-binary", "@/tmp/two-megabytes")
    assert large.status == 413
    # blog keeps the global limit (10m)
    assert request(host, "https://blog.test/upload", "--data-binary", "@/tmp/two-megabytes").status == 200


# --- slow clients and applications ---------------------------------------------------

# converge.yml sets the client timeouts to a few seconds. A slow client must be dropped
# once its timeout has passed: not before (less a second), and not much later (the bound
# is generous: the point is that nginx does not hold the connection for ever).
TIMEOUTS = {name: converge_vars(SCENARIO_DIR)[f"nginx_{name}"]
            for name in ("client_header_timeout", "client_body_timeout", "send_timeout")}
MARGIN, GRACE = 1, 10
TRICKLE_EVERY = 0.5  # seconds between two header lines of the slowloris client
BIG_FILE = f"{STATIC}/big.bin"  # much more than the kernel buffers of both ends hold
_slow = {}


def slow_clients(host):
    """Run every slow client of the tests at once on `host` (once per host); returns
    {case: what happened} (see SLOW_CLIENTS) plus "log": the access log lines of the
    requests, recognised by a token in their paths."""
    name = host.backend.host
    if name not in _slow:
        token = uuid.uuid4().hex[:12]
        header, body, send = (TIMEOUTS[k] + GRACE for k in ("client_header_timeout", "client_body_timeout",
                                                            "send_timeout"))
        big = f"GET /static/big.bin?{token} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
        cases = [
            {"name": "nothing sent", "kind": "stall", "port": 80, "limit": header},
            {"name": "no TLS handshake", "kind": "stall", "port": 443, "limit": header},
            {"name": "headers unfinished", "kind": "stall", "port": 80, "limit": header,
             "send": f"GET /headers-unfinished-{token} HTTP/1.1\r\nHost: blog.test\r\n"},
            {"name": "headers unfinished over TLS", "kind": "stall", "port": 443, "tls": "shop.test", "limit": header,
             "send": f"GET /headers-unfinished-tls-{token} HTTP/1.1\r\nHost: shop.test\r\n"},
            {"name": "headers trickled", "kind": "stall", "port": 80, "limit": header,
             "send": f"GET /headers-trickled-{token} HTTP/1.1\r\nHost: blog.test\r\n",
             "trickle": "X-Slow: still here\r\n", "every": TRICKLE_EVERY},
            {"name": "body unfinished", "kind": "stall", "port": 443, "tls": "shop.test", "limit": body,
             "send": f"POST /body-unfinished-{token} HTTP/1.1\r\nHost: shop.test\r\n"
                     "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n" + "x" * 1000},
            {"name": "response unread", "kind": "stop_reading", "port": 443, "tls": "shop.test", "limit": send,
             "rcvbuf": 65536, "send": big},
            {"name": "response read after a short pause", "kind": "stop_reading", "port": 443, "tls": "shop.test",
             "limit": 1, "rcvbuf": 65536, "send": big},
        ]
        script = base64.b64encode(SLOW_CLIENTS.encode()).decode()
        setup = run(host, f"head -c 64M /dev/zero > {BIG_FILE}")
        assert setup.rc == 0, setup.stderr
        cases = base64.b64encode(json.dumps(cases).encode()).decode()
        result = run(host, f"echo {script} | base64 -d > /tmp/slow_clients.py && "
                           f"echo {cases} | base64 -d | python3 /tmp/slow_clients.py {CERT}")
        run(host, f"rm -f {BIG_FILE} /tmp/slow_clients.py")
        assert result.rc == 0, result.stderr
        _slow[name] = json.loads(result.stdout)
        _slow[name]["log"] = run(host, f"grep -h {token} /var/log/nginx/*access.log").stdout
    return _slow[name]


def assert_dropped(seen, timeout, since):
    """nginx ended the connection `timeout` seconds after `since` (give or take), and
    gave the client nothing, or at most its 408 answer."""
    assert seen["outcome"] != "still open" and not seen["outcome"].startswith("client error"), seen
    assert timeout - MARGIN <= seen[since] < timeout + GRACE, seen
    assert not seen["received"] or seen["received"].startswith("HTTP/1.1 408 "), seen


def assert_logged_408(log, path):
    assert re.search(rf'"(GET|POST) {re.escape(path)}\S* HTTP/1.1" 408 ', log), log


def test_client_that_never_finishes_its_headers_is_dropped(host):
    seen = slow_clients(host)
    timeout = TIMEOUTS["client_header_timeout"]
    for case in ("nothing sent", "no TLS handshake", "headers unfinished", "headers unfinished over TLS"):
        assert_dropped(seen[case], timeout, "after_connect")
    assert_logged_408(seen["log"], "/headers-unfinished-")
    assert_logged_408(seen["log"], "/headers-unfinished-tls-")


def test_header_lines_trickled_in_do_not_extend_the_header_timeout(host):
    # Slowloris: a header line every half second. The timeout bounds the whole header.
    seen = slow_clients(host)["headers trickled"]
    timeout = TIMEOUTS["client_header_timeout"]
    assert_dropped(seen, timeout, "after_connect")
    assert seen["trickled"] >= (timeout - MARGIN) / TRICKLE_EVERY - 1, seen  # it kept sending until dropped


@pytest.mark.usefixtures("upstreams")
def test_client_that_stops_sending_its_body_is_dropped(host):
    seen = slow_clients(host)
    # The app is never asked: nginx reads the whole body before passing the request on.
    assert '"upstream"' not in seen["body unfinished"]["received"]
    assert_dropped(seen["body unfinished"], TIMEOUTS["client_body_timeout"], "after_stall")
    assert_logged_408(seen["log"], "/body-unfinished-")


def test_client_that_stops_reading_the_response_is_dropped(host):
    seen = slow_clients(host)
    # a short pause is no problem: the whole file arrives
    control = seen["response read after a short pause"]
    assert control["status_line"] == "HTTP/1.1 200 OK", control
    assert control["ended_after"] is None and control["received"] == control["content_length"], control
    # a client that stops reading is dropped send_timeout after nginx's last write; the
    # client sees it at once because nginx resets timed-out connections
    # (reset_timedout_connection) instead of leaving its unsent data to linger
    unread = seen["response unread"]
    assert unread["status_line"] == "HTTP/1.1 200 OK", unread
    assert unread["ended_after"] is not None, unread
    timeout = TIMEOUTS["send_timeout"]
    assert timeout - MARGIN <= unread["ended_after"] < timeout + GRACE, unread
    assert unread["received"] < unread["content_length"], unread


@pytest.mark.usefixtures("upstreams")
def test_slow_application_gets_504_after_the_vhosts_proxy_read_timeout(host):
    limit = vhost(converge_vars(SCENARIO_DIR), "blog")["proxy_read_timeout"]
    urls = ["https://blog.test/sleep/1",  # slow, but in time
            f"https://blog.test/sleep/{limit + 5}",  # too slow
            f"https://shop.test/sleep/{limit + 1}"]  # shop keeps the global timeout (60 s)
    # all at once: "<url> <status> <seconds>" for each
    curl = (f"curl -sS -o /dev/null -w '%{{url_effective}} %{{http_code}} %{{time_total}}\\n' --max-time 30 "
            f"--cacert {CERT} --connect-to ::127.0.0.1:")
    result = run(host, " ".join(f"{curl} {shlex.quote(url)} &" for url in urls) + " wait")
    seen = {url: (int(status), float(seconds))
            for url, status, seconds in (line.split() for line in result.stdout.splitlines())}
    assert [seen[url][0] for url in urls] == [200, 504, 200], result.stdout + result.stderr
    assert limit - MARGIN <= seen[urls[1]][1] < limit + GRACE, seen


@pytest.mark.usefixtures("upstreams")
def test_request_line_and_headers_are_limited(host):
    # large_client_header_buffers 16k: a request line or a header line up to 16k is read
    # (twice nginx's own default: large cookies pass), a longer one is refused.
    fits, too_long = "a" * 16000, "a" * 17000
    assert app(request(host, "https://shop.test/", "--http1.1", "-H", f"X-Big: {fits}"))["upstream"] == "shop"
    assert app(request(host, f"https://shop.test/{fits}", "--http1.1"))["upstream"] == "shop"
    assert request(host, "https://shop.test/", "--http1.1", "-H", f"X-Big: {too_long}").status == 400
    assert request(host, f"https://shop.test/{too_long}", "--http1.1").status == 414
    # over HTTP/2 as well (the limit applies to a field as sent, compressed: hence a longer
    # one); nginx ends the stream without an answer
    refused = request(host, "https://shop.test/", "-H", f"X-Big: {'a' * 30000}")
    assert refused.status is None and refused.rc != 0, refused


def test_unknown_names_get_no_answer(host):
    for name in ("unknown.test", "localhost"):
        assert_closed_without_answer(request(host, "http://127.0.0.1/", "-H", f"Host: {name}"))
    handshake = tls_handshake(host, server_name="unknown.test")
    assert handshake.rc != 0
    assert "unrecognized name" in handshake.stdout, handshake.stdout
    assert_tls_refused(request(host, "https://unknown.test/"))


def test_vhost_marked_absent_is_gone(host):
    # prepare.yml served retired.test; converge marked it absent.
    assert not host.file("/etc/nginx/sites-enabled/retired.conf").exists
    assert_closed_without_answer(request(host, "http://retired.test/hello.txt"))


# --- capacity: what the running nginx uses ---------------------------------------------

# converge.yml sets these unlike the role's defaults (each test checks that it does), so
# the tests below cannot pass on the defaults.
CAPACITY = {name: converge_vars(SCENARIO_DIR)[f"nginx_{name}"]
            for name in ("worker_connections", "worker_rlimit_nofile", "listen_backlog")}
DEFAULTS = yaml.safe_load((SCENARIO_DIR.parent.parent / "roles/nginx/defaults/main.yml").read_text(encoding="utf-8"))
LISTENERS = ("0.0.0.0:80", "[::]:80", "0.0.0.0:443", "[::]:443")


def open_file_limits(host, pid):
    """(soft, hard) limit of open files ("Max open files") of process `pid`."""
    limits = run(host, f"cat /proc/{pid}/limits").stdout
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def listen_backlogs(host):
    """{local address: backlog} of the TCP sockets listening on ports 80 and 443 (for a
    listening socket, ss shows the backlog as Send-Q)."""
    result = run(host, "ss -ltnH")
    assert result.rc == 0, result.stderr
    found = {}
    for line in result.stdout.splitlines():
        _, _, send_q, local = line.split()[:4]
        if local.rsplit(":", 1)[1] in ("80", "443"):
            found[local] = int(send_q)
    return found


def test_workers_run_with_the_open_file_limit_set(host):
    # nginx sets both limits of each worker process to worker_rlimit_nofile
    rlimit = CAPACITY["worker_rlimit_nofile"]
    assert rlimit != DEFAULTS["nginx_worker_rlimit_nofile"]
    _, workers = nginx_processes(host)
    assert workers
    assert {pid: open_file_limits(host, pid) for pid in workers} == dict.fromkeys(workers, (rlimit, rlimit))


def test_ports_80_and_443_listen_with_the_backlog_set(host):
    # The catch-all server's listens carry it (IPv4 and IPv6, 80 and 443). prepare.yml ran
    # the role with the default backlog: the reload that converge caused applied this one.
    backlog = CAPACITY["listen_backlog"]
    assert backlog != DEFAULTS["nginx_listen_backlog"]
    assert listen_backlogs(host) == dict.fromkeys(LISTENERS, backlog)


# One client connection to nginx (so one nginx worker, and its cache of idle connections
# to the app) per case, which sends its requests one after the other, after the given
# pauses. Reads a JSON list of {host, pauses} on stdin and prints, for each case, the
# list of {status, answer}: the JSON the app answered.
KEEPALIVE_CLIENT = r"""
import http.client, json, socket, ssl, sys, time

CERT = sys.argv[1]


def session(case):
    sock = socket.create_connection(("127.0.0.1", 443), timeout=20)
    context = ssl.create_default_context(cafile=CERT)
    context.set_alpn_protocols(["http/1.1"])
    connection = http.client.HTTPConnection("127.0.0.1", 443)
    connection.sock = context.wrap_socket(sock, server_hostname=case["host"])
    answers = []
    for pause in case["pauses"]:
        time.sleep(pause)
        connection.request("GET", "/keepalive", headers={"Host": case["host"]})
        response = connection.getresponse()
        answers.append({"status": response.status, "answer": json.loads(response.read())})
    connection.close()
    return answers


print(json.dumps([session(case) for case in json.load(sys.stdin)]))
"""


@pytest.mark.usefixtures("upstreams")
def test_connections_to_the_app_are_kept_open_only_where_asked(host):
    idle = vhost(converge_vars(SCENARIO_DIR), "blog")["upstream"]["keepalive_timeout"]
    cases = [{"host": "blog.test", "pauses": [0, 0, idle + 1.5]}, {"host": "shop.test", "pauses": [0, 0]}]
    script = base64.b64encode(KEEPALIVE_CLIENT.encode()).decode()
    cases = base64.b64encode(json.dumps(cases).encode()).decode()
    result = run(host, f"echo {script} | base64 -d > /tmp/keepalive_client.py && "
                       f"echo {cases} | base64 -d | python3 /tmp/keepalive_client.py {CERT}; "
                       "status=$?; rm -f /tmp/keepalive_client.py; exit $status")
    assert result.rc == 0, result.stderr
    blog, shop = json.loads(result.stdout)
    assert [(r["status"], r["answer"]["upstream"]) for r in blog + shop] == [(200, "blog")] * 3 + [(200, "shop")] * 2
    sent = {name: [{k.lower(): v for k, v in r["answer"]["headers"].items()} for r in answers]
            for name, answers in (("blog", blog), ("shop", shop))}
    # blog (upstream keepalive): HTTP/1.1 without "Connection: close"; the second request
    # comes on the first one's connection; after keepalive_timeout idle, nginx has closed
    # it and the third comes on a new one
    assert [r["answer"]["version"] for r in blog] == ["HTTP/1.1"] * 3, blog
    assert [h.get("connection") for h in sent["blog"]] == [None] * 3, blog
    first, second, third = (r["answer"]["connection"] for r in blog)
    assert first == second and third != second, blog
    # shop (no keepalive): a connection per request, closed after the response
    assert [r["answer"]["version"] for r in shop] == ["HTTP/1.0"] * 2, shop
    assert [h.get("connection") for h in sent["shop"]] == ["close"] * 2, shop
    assert shop[0]["answer"]["connection"] != shop[1]["answer"]["connection"], shop


# --- changes: reload, never restart; removal --------------------------------------------

# The role runs once for every host (not once per host); what each host shows is
# recorded between the runs, and each host's test checks its own record.

@pytest.fixture(name="pop_vhost", scope="module")
def fixture_pop_vhost(upstreams, scenario_dir):  # pylint: disable=unused-argument
    """A vhost "pop" added to every host, then marked absent."""
    hosts = every_host()
    seen = {h.backend.host: {"before": nginx_processes(h), "refused": request(h, "https://pop.test/")} for h in hosts}
    role_vars = converge_vars(scenario_dir)
    pop = {"name": "pop", "server_names": ["pop.test"], "upstream": {"port": 8001},
           "tls": vhost(role_vars, "shop")["tls"]}
    role_vars["nginx_vhosts"].append(pop)
    added = apply_role(scenario_dir, "nginx", role_vars)
    removed = None
    if added.returncode == 0:
        for h in hosts:
            seen[h.backend.host].update(added_response=request(h, "https://pop.test/"), added=nginx_processes(h))
        role_vars["nginx_vhosts"][-1] = {"name": "pop", "state": "absent"}
        removed = apply_role(scenario_dir, "nginx", role_vars)
        if removed.returncode == 0:
            for h in hosts:
                seen[h.backend.host].update(
                    file_left=h.file("/etc/nginx/sites-enabled/pop.conf").exists,
                    removed_https=request(h, "https://pop.test/"), removed_http=request(h, "http://pop.test/"),
                    removed=nginx_processes(h))
    return {"added": added, "removed": removed, "hosts": seen}


def test_vhost_added_by_reload_then_removed(host, pop_vhost):
    seen = pop_vhost["hosts"][host.backend.host]
    master, workers = seen["before"]
    assert_tls_refused(seen["refused"])

    added = pop_vhost["added"]
    assert added.returncode == 0, added.stdout[-3000:]
    response = seen["added_response"]
    assert response.status == 200, response
    assert app(response)["headers"]["Host"] == "pop.test"
    new_master, new_workers = seen["added"]
    assert new_master == master  # not restarted ...
    assert not new_workers & workers  # ... but reloaded: new workers

    removed = pop_vhost["removed"]
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert not seen["file_left"]
    assert_tls_refused(seen["removed_https"])
    assert_closed_without_answer(seen["removed_http"])
    assert seen["removed"][0] == master


# Without the catch-all server, the sockets' options (the backlog) go on the listens of
# one vhost per port: the first by name (blog, before down and shop), and the first TLS
# vhost by name (blog, before shop).
NO_CATCH_ALL_BACKLOG = 900


def backlog_lines(host):
    """{file: number of lines with backlog=} of nginx.conf and the vhost files."""
    result = run(host, "grep -c backlog= /etc/nginx/nginx.conf /etc/nginx/sites-enabled/*.conf")
    return {path: int(count) for path, count in (line.rsplit(":", 1) for line in result.stdout.splitlines())}


@pytest.fixture(name="no_catch_all", scope="module")
def fixture_no_catch_all(scenario_dir):
    """The role applied to every host without the catch-all server and with another
    backlog, then as converge.yml has it again."""
    hosts = every_host()
    role_vars = converge_vars(scenario_dir)
    role_vars.update(nginx_default_server=False, nginx_listen_backlog=NO_CATCH_ALL_BACKLOG)
    applied = apply_role(scenario_dir, "nginx", role_vars)
    seen = {h.backend.host: {} for h in hosts}
    if applied.returncode == 0:
        for h in hosts:
            seen[h.backend.host].update(files=backlog_lines(h), backlogs=listen_backlogs(h))
    restored = apply_role(scenario_dir, "nginx", converge_vars(scenario_dir))
    if restored.returncode == 0:
        for h in hosts:
            seen[h.backend.host].update(restored=listen_backlogs(h))
    return {"applied": applied, "restored": restored, "hosts": seen}


def test_without_the_catch_all_one_vhost_per_port_sets_the_backlog(host, no_catch_all):
    applied = no_catch_all["applied"]
    assert applied.returncode == 0, applied.stdout[-3000:]
    seen = no_catch_all["hosts"][host.backend.host]
    assert seen["files"] == {"/etc/nginx/nginx.conf": 0, "/etc/nginx/sites-enabled/blog.conf": 4,
                             "/etc/nginx/sites-enabled/certified.conf": 0,
                             "/etc/nginx/sites-enabled/down.conf": 0, "/etc/nginx/sites-enabled/shop.conf": 0}
    assert seen["backlogs"] == dict.fromkeys(LISTENERS, NO_CATCH_ALL_BACKLOG)
    # and back, by reload, to the catch-all's listens with converge.yml's backlog
    restored = no_catch_all["restored"]
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert seen["restored"] == dict.fromkeys(LISTENERS, CAPACITY["listen_backlog"])


# --- what must not change -------------------------------------------------------------

# Everything under /etc/nginx (names, link targets, inodes, sizes, times, contents) and
# the nginx processes: a reload would replace the workers.
SNAPSHOT = ("find /etc/nginx -printf '%p %y %l %i %s %T@\\n' | sort; "
            "find /etc/nginx -type f -exec sha256sum {} + | sort; "
            "cat /run/nginx.pid; pgrep -P \"$(cat /run/nginx.pid)\" -f 'worker process$' | sort")


def snapshot(host):
    result = run(host, SNAPSHOT)
    assert result.rc == 0, result.stderr
    return result.stdout


def _unknown_directive(role_vars):
    vhost(role_vars, "shop")["extra_config"] = "no_such_directive on;"


def _missing_certificate(role_vars):
    vhost(role_vars, "blog")["tls"] = {"certificate": "/etc/ssl/certs/missing.pem",
                                       "key": "/etc/ssl/private/missing.key"}


def _bad_main_config(role_vars):
    role_vars["nginx_http_extra_config"] = "no_such_global_directive on;"


REJECTED_BY_NGINX = {
    "unknown directive in a vhost": (_unknown_directive,
                                     'unknown directive "no_such_directive" in /etc/nginx/sites-enabled/shop.conf'),
    "missing certificate": (_missing_certificate, 'cannot load certificate "/etc/ssl/certs/missing.pem"'),
    "unknown directive in the main configuration": (_bad_main_config,
                                                    'unknown directive "no_such_global_directive" in /etc/nginx/nginx.conf'),
}


_rejected = {}


def rejected_run(scenario_dir, case):
    """Apply the spoilt input of `case` to every host at once (once per case): the result
    and, for each host, its snapshot before and after and what it serves afterwards."""
    if case not in _rejected:
        hosts = every_host()
        spoil, _ = REJECTED_BY_NGINX[case]
        role_vars = converge_vars(scenario_dir)
        spoil(role_vars)
        # a valid change in the same run must not be applied either
        vhost(role_vars, "blog")["headers"]["X-New-Header"] = "must not appear"
        before = {h.backend.host: snapshot(h) for h in hosts}
        result = apply_role(scenario_dir, "nginx", role_vars)
        _rejected[case] = {"result": result, "hosts": {h.backend.host: {
            "before": before[h.backend.host], "after": snapshot(h), "nginx_t": run(h, "nginx -t").rc,
            "blog": request(h, "https://blog.test/"), "shop": request(h, "https://shop.test/")} for h in hosts}}
    return _rejected[case]


@pytest.mark.usefixtures("upstreams")
@pytest.mark.parametrize("case", REJECTED_BY_NGINX)
def test_configuration_nginx_rejects_fails_and_keeps_serving(host, scenario_dir, case):
    _, message = REJECTED_BY_NGINX[case]
    run_ = rejected_run(scenario_dir, case)
    result, seen = run_["result"], run_["hosts"][host.backend.host]

    assert result.returncode != 0, result.stdout[-3000:]
    failure = failure_of(result, host.backend.host)
    assert "nginx rejected the new configuration" in failure, result.stdout[-3000:]
    assert " ".join(message.split()) in failure, result.stdout[-3000:]
    assert seen["after"] == seen["before"]  # no file touched, no reload
    assert seen["nginx_t"] == 0  # what is on disk still loads
    blog = seen["blog"]
    assert app(blog)["upstream"] == "blog"
    assert "x-new-header" not in blog.headers
    assert app(seen["shop"])["upstream"] == "shop"


# Bad input fails before anything happens. "extra" is a valid new vhost listed beside the
# bad entry: it must not appear.
EXTRA = {"name": "extra", "server_names": ["extra.test"], "upstream": {"port": 8001}}
BAD_INPUTS = {
    "server name with a space": ({"name": "bad", "server_names": ["bad .test"]},
                                 "server_names must be a non-empty list of names without spaces"),
    "no server name": ({"name": "bad", "upstream": {"port": 8001}}, "server_names must be a non-empty list"),
    "port that is not a number": ({"name": "bad", "server_names": ["bad.test"], "upstream": {"port": "eighty"}},
                                  "argument 'port' is of type str found in 'nginx_vhosts -> upstream'"),
    "misspelt option": ({"name": "bad", "server_name": ["bad.test"]},
                        "nginx_vhosts.server_name. Supported parameters include"),
    "socket and port": ({"name": "bad", "server_names": ["bad.test"],
                         "upstream": {"port": 8001, "socket": "/run/bad.sock"}},
                        "upstream takes exactly one of socket"),
    "keepalive without an app": ({"name": "bad", "server_names": ["bad.test"], "upstream": {"keepalive": 4}},
                                 "upstream takes exactly one of socket"),
    "negative keepalive": ({"name": "bad", "server_names": ["bad.test"], "upstream": {"port": 8001, "keepalive": -1}},
                           "and optionally keepalive (idle connections kept per worker, 0 or more)"),
    "relative socket": ({"name": "bad", "server_names": ["bad.test"], "upstream": {"socket": "run/bad.sock"}},
                        "upstream takes exactly one of socket"),
    "redirect without tls": ({"name": "bad", "server_names": ["bad.test"], "https_redirect": True},
                             "https_redirect and hsts need tls"),
    "static prefix without its slash": ({"name": "bad", "server_names": ["bad.test"],
                                         "static": [{"location": "/media", "path": "/srv/media"}]},
                                        "each static location starts and ends with '/'"),
    "directive smuggled in a path": ({"name": "bad", "server_names": ["bad.test"],
                                      "static": [{"location": "/media/", "path": "/srv/media; autoindex on"}]},
                                     "none may contain spaces, quotes or ';'"),
    "header value over two lines": ({"name": "bad", "server_names": ["bad.test"],
                                     "headers": {"X-Bad": "a\nSet-Cookie: x=1"}},
                                    "header values are one line"),
    "name already served by another vhost": ({"name": "bad", "server_names": ["shop.test"]},
                                             "claimed by more than one vhost: shop.test"),
    "invalid vhost name": ({"name": "Bad Name", "server_names": ["bad.test"]}, "Invalid nginx vhost name"),
    "same vhost twice in one list": (EXTRA, "appear more than once in the same list: extra"),
    "wildcard name for an ACME certificate": (
        {"name": "bad", "server_names": ["*.bad.test"], "tls": {"acme": {}}},
        'gets its certificate from an ACME CA, so each of its server_names must be a plain DNS name the CA can '
        'reach over HTTP (no wildcard, no regular expression, no IP address; got ["*.bad.test"])'),
    "ACME CA over plain HTTP": (
        {"name": "bad", "server_names": ["bad.test"], "tls": {"acme": {"directory": "http://ca.test/dir"}}},
        'the directory must be an https:// URL (got "http://ca.test/dir")'),
    "EAB key ID without its key": (
        {"name": "bad", "server_names": ["bad.test"], "tls": {"acme": {"eab_kid": "kid-1"}}},
        "eab_kid and eab_hmac_key both set or both empty"),
    "certificate without its key beside ACME": (
        {"name": "bad", "server_names": ["bad.test"], "tls": {"acme": {}, "certificate": "/etc/ssl/certs/x.pem"}},
        "or acme (a mapping, {} for the nginx_acme_* settings), or both (the pair then serves until the ACME "
        "certificate is on the host)"),
    "EAB key that is not base64url": (
        {"name": "bad", "server_names": ["bad.test"], "tls": {"acme": {"eab_kid": "k", "eab_hmac_key": "a b"}}},
        "The EAB HMAC key of vhost bad is not base64url"),
    "two accounts at one CA": (
        {"name": "bad", "server_names": ["bad.test"], "tls": {"acme": {
            "directory": "https://nginx-debian13:14000/dir", "eab_kid": "other", "eab_hmac_key": "c2VjcmV0"}}},
        "certbot keeps one account per CA on a host, registered with the email and EAB key ID of the first "
        "certificate it obtained there, so the vhosts of one CA must give the same ones. They differ at "
        "https://nginx-debian13:14000/dir: bad with email (none) and eab_kid other; certified with email "
        "ops@example.com and eab_kid webdeploy-sandbox"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_clearly_and_changes_nothing(host, scenario_dir, case):
    check_once(host)
    entry, message = BAD_INPUTS[case]
    role_vars = converge_vars(scenario_dir)
    role_vars["nginx_vhosts"] += [EXTRA, entry]
    before = snapshot(host)
    result = apply_role(scenario_dir, "nginx", role_vars, "--limit", host.backend.host)
    assert result.returncode != 0, result.stdout[-3000:]
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert snapshot(host) == before
    assert not host.file("/etc/nginx/sites-enabled/extra.conf").exists


# Capacity settings that contradict each other or the host: (settings, message), given
# the host's net.core.somaxconn and name.
BAD_SETTINGS = {
    "fewer open files than two per connection": lambda somaxconn, name: (
        {"nginx_worker_connections": 3000, "nginx_worker_rlimit_nofile": 5999},
        "nginx_worker_rlimit_nofile must be 0 (keep the system's limit) or at least 2 x nginx_worker_connections = 6000: "
        "each proxied request holds two connections"),
    "backlog above net.core.somaxconn": lambda somaxconn, name: (
        {"nginx_listen_backlog": somaxconn + 1},
        f"nginx_listen_backlog ({somaxconn + 1}) must be 0 (nginx's default, 511) or a positive number no larger than "
        f"net.core.somaxconn on {name} ({somaxconn}): the kernel would silently cap a larger backlog at {somaxconn}. "
        "Raise the sysctl"),
    "negative backlog": lambda somaxconn, name: (
        {"nginx_listen_backlog": -1}, "nginx_listen_backlog (-1) must be 0 (nginx's default, 511) or a positive number"),
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_bad_capacity_settings_fail_clearly_and_change_nothing(host, scenario_dir, case):
    check_once(host)
    somaxconn = int(run(host, "cat /proc/sys/net/core/somaxconn").stdout)
    settings, message = BAD_SETTINGS[case](somaxconn, host.backend.host)
    role_vars = converge_vars(scenario_dir)
    role_vars.update(settings)
    before = snapshot(host)
    result = apply_role(scenario_dir, "nginx", role_vars, "--limit", host.backend.host)
    assert result.returncode != 0, result.stdout[-3000:]
    # (the YAML output doubles the quote in "system's", "nginx's")
    assert message in failure_of(result, host.backend.host).replace("''", "'"), result.stdout[-3000:]
    assert snapshot(host) == before


# The argument specs' messages (the output also lists the whole spec, so each message
# is matched in full, not just the variable's name).
@pytest.mark.parametrize("role_vars, message", [
    ({"nginx_vhosts": "shop"}, "Elements value for option 'nginx_vhosts' is of type str"),
    ({"nginx_ssl_protocols": ["TLSv1.1", "TLSv1.2"]},
     "value of nginx_ssl_protocols must be one or more of: TLSv1.2, TLSv1.3. Got no match for: TLSv1.1"),
    ({"nginx_worker_connections": "many"},
     "argument 'nginx_worker_connections' is of type str and we were unable to convert to int"),
], ids=["vhosts given as a string", "TLS 1.1 requested", "word for a number"])
def test_wrong_types_fail_clearly_and_change_nothing(host, scenario_dir, role_vars, message):
    check_once(host)
    before = snapshot(host)
    result = apply_role(scenario_dir, "nginx", role_vars, "--limit", host.backend.host)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "Validation of arguments failed" in result.stdout, result.stdout[-3000:]
    assert message in result.stdout, result.stdout[-3000:]
    assert snapshot(host) == before


def test_check_mode_reports_no_change(scenario_dir):
    assert_check_mode_clean(scenario_dir)

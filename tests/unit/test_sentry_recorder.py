"""tests/sentry_recorder.py, the stand-in for Sentry in the stack scenario: it reads what
sentry-sdk 2.x sends (a gzip envelope, as the SDK writes it) and what the release role
sends (a release, then a deploy, with a token), answers as Sentry does, and records it."""

import gzip
import http.client
import json
import threading

import pytest
import sentry_recorder

TOKEN = "test-token"


@pytest.fixture(name="recorder")
def fixture_recorder(tmp_path):
    server = sentry_recorder.serve(0, str(tmp_path / "records.jsonl"), TOKEN, host="127.0.0.1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], tmp_path / "records.jsonl"
    server.shutdown()
    server.server_close()


def post(port, path, body, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


def records(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/records")
    response = conn.getresponse()
    return [json.loads(line) for line in response.read().splitlines()]


def sdk_envelope(event):
    """An envelope as sentry-sdk 2.x writes it: a header line, an item header with the
    payload's length, the payload."""
    payload = json.dumps(event).encode()
    header = {"event_id": event["event_id"], "sent_at": "2026-12-05T07:00:00Z",
              "trace": {"environment": event["environment"], "release": event["release"]}}
    item = {"type": "event", "content_type": "application/json", "length": len(payload)}
    return json.dumps(header).encode() + b"\n" + json.dumps(item).encode() + b"\n" + payload + b"\n"


EVENT = {"event_id": "0" * 32, "release": "shop@1.4.0", "environment": "stack", "level": "error",
         "server_name": "stack-web12",
         "exception": {"values": [{"type": "DeliberateError", "value": "webxample 1.4.0: deliberate\nerror"}]}}


def test_an_sdk_envelope_is_recorded_with_release_environment_and_exception(recorder):
    port, _ = recorder
    status, answer = post(port, "/api/7/envelope/", gzip.compress(sdk_envelope(EVENT)), {
        "Content-Type": "application/x-sentry-envelope", "Content-Encoding": "gzip",
        "X-Sentry-Auth": "Sentry sentry_key=pubkey, sentry_version=7, sentry_client=sentry.python/2.75.0"})
    assert (status, answer) == (200, {"id": "0" * 32})
    (got,) = records(port)
    assert {k: v for k, v in got.items() if k != "time"} == {
        "kind": "event", "project": "7", "sentry_key": "pubkey", "release": "shop@1.4.0", "environment": "stack",
        "level": "error", "message": None, "server_name": "stack-web12",
        "exceptions": [{"type": "DeliberateError", "value": "webxample 1.4.0: deliberate\nerror"}]}


def test_a_logged_error_keeps_its_message(recorder):
    port, _ = recorder
    logged = {**EVENT, "exception": None, "logentry": {"message": "healthz: %s", "formatted": "healthz: broken"}}
    assert post(port, "/api/7/envelope/", sdk_envelope(logged), {"X-Sentry-Auth": "Sentry sentry_key=k"})[0] == 200
    assert [(r["message"], r["exceptions"]) for r in records(port)] == [("healthz: broken", [])]


def test_a_legacy_store_event_is_recorded(recorder):
    port, _ = recorder
    status, _ = post(port, "/api/7/store/", gzip.compress(json.dumps({**EVENT, "message": "hello"}).encode()),
                     {"Content-Encoding": "gzip", "X-Sentry-Auth": "Sentry sentry_key=pubkey"})
    assert status == 200
    assert [(r["kind"], r["message"]) for r in records(port)] == [("event", "hello")]


def test_a_release_then_its_deploy_as_the_release_role_sends_them(recorder):
    port, _ = recorder
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    release = json.dumps({"version": "shop@1.4.0", "projects": ["shop"]})
    assert post(port, "/api/0/organizations/acme/releases/", release, auth)[0] == 201
    assert post(port, "/api/0/organizations/acme/releases/", release, auth)[0] == 208  # it exists
    status, answer = post(port, "/api/0/organizations/acme/releases/shop%401.4.0/deploys/",
                          json.dumps({"environment": "stack", "name": "1.3.0 -> 1.4.0", "projects": ["shop"]}), auth)
    assert status == 201 and answer["environment"] == "stack"
    got = [{k: v for k, v in r.items() if k != "time"} for r in records(port)]
    assert got == [
        {"kind": "release", "org": "acme", "version": "shop@1.4.0", "projects": ["shop"]},
        {"kind": "release", "org": "acme", "version": "shop@1.4.0", "projects": ["shop"]},
        {"kind": "deploy", "org": "acme", "version": "shop@1.4.0", "environment": "stack", "name": "1.3.0 -> 1.4.0",
         "projects": ["shop"]}]


def test_the_api_refuses_a_wrong_token_and_an_unknown_release(recorder):
    port, _ = recorder
    body = json.dumps({"environment": "stack"})
    assert post(port, "/api/0/organizations/acme/releases/x%401/deploys/", body,
                {"Authorization": "Bearer wrong"}) == (401, {"detail": "Invalid token"})
    assert post(port, "/api/0/organizations/acme/releases/x%401/deploys/", body,
                {"Authorization": f"Bearer {TOKEN}"}) == (
        404, {"detail": "The requested resource does not exist: release x@1"})
    assert [(r["kind"], r["status"]) for r in records(port)] == [("refused", 401), ("refused", 404)]


def test_an_encoding_it_cannot_read_is_refused(recorder):
    port, _ = recorder
    status, answer = post(port, "/api/7/envelope/", b"\x00", {"Content-Encoding": "br"})
    assert (status, answer) == (415, {"detail": "Content-Encoding br is not supported by this recorder"})

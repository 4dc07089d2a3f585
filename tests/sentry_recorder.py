#!/usr/bin/env python3
"""A recorder of Sentry's ingest and API protocol, for the sandbox's tests: no Sentry
server can run here. Standard library only; it runs on a sandbox host as a service
(molecule/stack/prepare.yml) and in the unit tests (tests/unit/test_sentry_recorder.py).

    sentry_recorder.py PORT RECORDS_FILE TOKEN

It answers the way Sentry does, as far as sentry-sdk and the release role need:

    POST /api/<project>/envelope/       an SDK's envelope (plain, gzip or deflate) -> 200 {"id"}
    POST /api/<project>/store/          an older SDK's event                       -> 200 {"id"}
    POST /api/0/organizations/<org>/releases/                     -> 201, or 208 if it exists
    POST /api/0/organizations/<org>/releases/<version>/deploys/   -> 201, or 404 for no release
    GET  /records                       every record so far, one JSON object per line

The API wants `Authorization: Bearer TOKEN` (401 otherwise, as Sentry answers). Each
request that arrives is recorded as one JSON line in RECORDS_FILE:

    {"kind": "event", "project": "7", "sentry_key": "...", "release": ..., "environment": ...,
     "exceptions": [{"type", "value"}], "message": ..., "level": ...}
    {"kind": "release", "org": ..., "version": ..., "projects": [...]}
    {"kind": "deploy", "org": ..., "version": ..., "environment": ..., "name": ..., "projects": [...]}
    {"kind": "refused", "path": ..., "status": 401 | 404 | 415 | 400, "why": ...}
"""

import gzip
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INGEST = re.compile(r"/api/(?P<project>[0-9]+)/(?P<kind>envelope|store)/")
RELEASES = re.compile(r"/api/0/organizations/(?P<org>[^/]+)/releases/")
DEPLOYS = re.compile(r"/api/0/organizations/(?P<org>[^/]+)/releases/(?P<version>[^/]+)/deploys/")
SENTRY_KEY = re.compile(r"sentry_key=([^,\s]+)")


def decode(body, encoding):
    """The request body without its Content-Encoding; ValueError for one we cannot read."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"Content-Encoding {encoding} is not supported by this recorder")


def envelope_items(data):
    """[(item header, payload bytes)] of an envelope: a header line, then for each item a
    header line and its payload (`length` bytes when the header gives it, else one line)."""
    _, _, rest = data.partition(b"\n")
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[:header["length"]], rest[header["length"]:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


def event_record(project, key, event):
    """What the tests look at in one event."""
    values = (event.get("exception") or {}).get("values") or []
    # A captured message or a logged error (the logging integration's `logentry`).
    message = event.get("message") or event.get("logentry")
    if isinstance(message, dict):
        message = message.get("formatted") or message.get("message")
    return {"kind": "event", "project": project, "sentry_key": key, "release": event.get("release"),
            "environment": event.get("environment"), "level": event.get("level"), "message": message,
            "exceptions": [{"type": v.get("type"), "value": v.get("value")} for v in values],
            "server_name": event.get("server_name")}


class Recorder:
    """The records, in memory and in RECORDS_FILE, and the releases Sentry would know."""

    def __init__(self, path, token):
        self.path, self.token = path, token
        self.lock = threading.Lock()
        self.releases = set()
        open(path, "a", encoding="utf-8").close()

    def add(self, record):
        record = {"time": round(time.time(), 3), **record}
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def handler_for(recorder):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the records are the log
            pass

        def answer(self, status, payload):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def refuse(self, status, why):
            recorder.add({"kind": "refused", "path": self.path, "status": status, "why": why})
            self.answer(status, {"detail": why})

        def do_GET(self):
            if urllib.parse.urlsplit(self.path).path != "/records":
                return self.refuse(404, "not found")
            with recorder.lock, open(recorder.path, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            path = urllib.parse.urlsplit(self.path).path
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = decode(raw, self.headers.get("Content-Encoding"))
            except (ValueError, OSError, zlib.error) as error:
                return self.refuse(415, str(error))
            if m := INGEST.fullmatch(path):
                return self.ingest(m["project"], m["kind"], body)
            if self.headers.get("Authorization") != f"Bearer {recorder.token}":
                return self.refuse(401, "Invalid token")
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return self.refuse(400, "the body is not JSON")
            if m := DEPLOYS.fullmatch(path):
                version = urllib.parse.unquote(m["version"])
                if version not in recorder.releases:
                    return self.refuse(404, f"The requested resource does not exist: release {version}")
                recorder.add({"kind": "deploy", "org": m["org"], "version": version,
                              "environment": data.get("environment"), "name": data.get("name"),
                              "projects": data.get("projects")})
                return self.answer(201, {"id": str(uuid.uuid4().int)[:7], "environment": data.get("environment"),
                                         "name": data.get("name"), "dateFinished": time.strftime("%Y-%m-%dT%H:%M:%SZ")})
            if m := RELEASES.fullmatch(path):
                version = data.get("version")
                if not version or not data.get("projects"):
                    return self.refuse(400, "version and projects are required")
                known = version in recorder.releases
                recorder.releases.add(version)
                recorder.add({"kind": "release", "org": m["org"], "version": version, "projects": data["projects"]})
                return self.answer(208 if known else 201, {"version": version, "projects": data["projects"]})
            return self.refuse(404, "not found")

        def ingest(self, project, kind, body):
            key = SENTRY_KEY.search(self.headers.get("X-Sentry-Auth") or urllib.parse.urlsplit(self.path).query or "")
            try:
                if kind == "store":
                    events = [json.loads(body)]
                else:
                    events = [json.loads(payload) for header, payload in envelope_items(body)
                              if header.get("type") in ("event", "transaction")]
            except ValueError:
                return self.refuse(400, "the envelope cannot be read")
            for event in events:
                recorder.add(event_record(project, key[1] if key else None, event))
            return self.answer(200, {"id": (events[0].get("event_id") if events else None) or uuid.uuid4().hex})

    return Handler


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # the listen backlog (the default 5 is for a toy)


def serve(port, path, token, host="0.0.0.0"):
    """The server, not started yet (serve_forever())."""
    return Server((host, port), handler_for(Recorder(path, token)))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: sentry_recorder.py PORT RECORDS_FILE TOKEN")
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]).serve_forever()

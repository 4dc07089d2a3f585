"""The apps of `webapp_apps`, resolved and checked in one place.

Every entry point reads an app's definition: provisioning (the webapp role), a deploy or
a rollback (the release role, from a terminal or an AWX job template) and the smoke test
after a deploy. They all see it through these two filters, so a field has one default
and one rule:

    webapp_apps | webapp_resolved   the entries with every optional field filled in
    webapp_apps | webapp_errors     every error, as the sentences the user reads

The rules need no host: tests/unit/test_webapp_apps.py covers each one. The webapp
role's argument_specs.yml documents the fields; this file is what enforces them.
"""

import copy
import json
import re
from collections.abc import Mapping
from numbers import Number

# The optional fields and their defaults (package and manage_command default to the name).
DEFAULTS = {
    "state": "present",
    "env": {},
    "numprocesses": 2,
    "workers": 2,
    "rollout_surge": 0,
    "gunicorn_args": [],
    "graceful_timeout": 30,
    "backlog": 2048,
    "static_url": "/static/",
    "health_path": "/healthz",
    "smoke_paths": [{"path": "/", "status": 200}],
    "canary_timeout": 30,
    "check_command": ["check"],
    "hooks": [["migrate", "--noinput"], ["collectstatic", "--noinput"]],
    "keep_releases": 5,
    "tls": {},
    "https_redirect": False,
    "hsts": False,
    "vhost": {},
    "sentry_dsn": "",
    "sentry_project": "",
}
FIELDS = frozenset(DEFAULTS) | {"name", "package", "wsgi", "server_names", "manage_command", "reload_warmup"}

NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
WSGI = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.()]*)?")
# A server name goes into nginx's server_name directive unquoted.
BAD_SERVER_NAME = re.compile(r"""^$|.*[\s"'\\;{}#]""")
STATIC_URL = re.compile(r"/([^\s;{}#]*/)?")
URL_PATH = re.compile(r"/\S*")
STATUS = re.compile(r"[1-5][0-9][0-9]")
# gunicorn's settings file: webdeploy passes its own (the readiness hooks).
CONFIG_ARG = re.compile(r"-c|--config(=.*)?|-c.+")
# A Sentry DSN: <scheme>://<public key>@<host>[:port][/path]/<project id>.
SENTRY_DSN = re.compile(r"https?://[A-Za-z0-9]+@[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~-]+)*/[0-9]+")
# A Sentry project slug.
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
# What a manage command (a console script in the venv) may be called.
COMMAND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def webapp_resolved(apps):
    """The entries of `apps` with every optional field filled in. Entries that are not
    mappings are passed through as they are (webapp_errors names them); anything but a
    list gives []."""
    if not _is_list(apps):
        return []
    out = []
    for app in apps:
        if not isinstance(app, Mapping):
            out.append(app)
            continue
        resolved = {**copy.deepcopy(DEFAULTS), **app}
        if isinstance(app.get("name"), str):
            resolved.setdefault("package", app["name"])
            resolved.setdefault("manage_command", app["name"])
        out.append(resolved)
    return out


def webapp_errors(apps):
    """Every error in `apps` (a webapp_apps list), one sentence each; [] when it is valid."""
    if apps is None:
        return []
    if not _is_list(apps):
        return [f"webapp_apps must be a list of apps, one mapping each (got {_kind(apps)})"]
    errors = []
    names = [a.get("name") for a in apps if isinstance(a, Mapping) and "name" in a]
    if len(set(map(repr, names))) != len(names):
        errors.append("app names must be unique")
    for index, app in enumerate(webapp_resolved(apps)):
        if not isinstance(app, Mapping):
            errors.append(f"app number {index + 1}: each app is a mapping of fields, such as"
                          f" {{name: shop, wsgi: shop.wsgi:application}} (got {_kind(app)})")
            continue
        errors.extend(f"app {app.get('name', '?')}: {e}" for e in _app_errors(app))
    return errors


def _app_errors(a):
    if not (isinstance(a.get("name"), str) and NAME.fullmatch(a["name"])):
        yield "name must match ^[a-z][a-z0-9_-]{0,31}$"
    unknown = sorted(str(k) for k in a if k not in FIELDS)
    if unknown:
        yield f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(sorted(FIELDS - {'reload_warmup'}))}"
    if a["state"] not in ("present", "absent"):
        yield f"state must be present or absent (got {_json(a['state'])})"
    if a["state"] != "present":
        return  # an absent app is only removed: the rest is not used
    if not (isinstance(a.get("wsgi"), str) and WSGI.fullmatch(a["wsgi"])):
        yield "wsgi must be a module path such as webxample.wsgi:application"
    names = a.get("server_names")
    if not _is_list(names) or not names:
        yield "server_names must list at least one name"
    elif any(BAD_SERVER_NAME.match(_str(n)) for n in names):
        yield ("server_names must be names without spaces, quotes, backslashes, ';', '{', '}' or '#'"
               f" (got {_json(names)})")
    for field in ("package", "manage_command"):  # missing only when the name is bad
        if field in a and not (isinstance(a[field], str) and COMMAND.fullmatch(a[field])):
            yield f"{field} must be a name such as {a.get('name') or 'shop'} (got {_json(a[field])})"
    for field in ("numprocesses", "workers"):
        if not (_is_int(a[field]) and a[field] >= 1):
            yield f"{field} must be 1 or more"
    if not (_is_int(a["rollout_surge"]) and a["rollout_surge"] >= 0):
        yield ("rollout_surge must be 0 (all the new processes at once) or the number of new processes"
               " a deploy starts at a time")
    if not (_is_int(a["backlog"]) and 1 <= a["backlog"] <= 65535):
        yield "backlog must be 1 to 65535 connections (the kernel caps it at net.core.somaxconn)"
    if not (_is_int(a["graceful_timeout"]) and a["graceful_timeout"] >= 1):
        yield "graceful_timeout must be 1 or more seconds"
    if "reload_warmup" in a:
        yield ("reload_warmup is no longer used: a deploy waits until the new processes"
               " are ready, at most canary_timeout seconds; remove it")
    if not (_is_int(a["keep_releases"]) and a["keep_releases"] >= 2):
        yield "keep_releases must be 2 or more (current and previous)"
    if not (isinstance(a["static_url"], str) and STATIC_URL.fullmatch(a["static_url"])):
        yield "static_url must start and end with /"
    if not (isinstance(a["health_path"], str) and URL_PATH.fullmatch(a["health_path"])):
        yield "health_path must start with /"
    if not _smoke_paths_ok(a["smoke_paths"]):
        yield ("smoke_paths must be a list of {path, status}, each path starting with / and each status"
               f" an HTTP status such as 200 (got {_json(a['smoke_paths'])})")
    if not (_is_int(a["canary_timeout"]) and 1 <= a["canary_timeout"] <= 600):
        yield "canary_timeout must be 1 to 600 seconds"
    commands = (a["hooks"] if _is_list(a["hooks"]) else [a["hooks"]]) + [a["check_command"]]
    if not all(_is_list(c) and c for c in commands):
        yield "each hook and check_command is a list of arguments, e.g. [migrate, --noinput]"
    if not isinstance(a["env"], Mapping):
        yield "env must be a mapping of variable names to values"
    else:
        ours = [str(k) for k in a["env"] if str(k).startswith("WEBDEPLOY_")]
        if ours:
            yield f"env must not set WEBDEPLOY_* variables, webdeploy sets them (got {', '.join(ours)})"
    if not _is_list(a["gunicorn_args"]):
        yield 'gunicorn_args must be a list of arguments, e.g. [--timeout, "60"]'
    elif any(CONFIG_ARG.fullmatch(_str(arg)) for arg in a["gunicorn_args"]):
        yield ("gunicorn_args must not give --config: webdeploy passes its own settings file (the"
               " readiness hooks); give gunicorn settings as arguments instead")
    for field in ("tls", "vhost"):
        if not isinstance(a[field], Mapping):
            yield f"{field} must be a mapping (got {_json(a[field])})"
    for field in ("https_redirect", "hsts"):
        if not isinstance(a[field], bool):
            yield f"{field} must be true or false (got {_json(a[field])})"
    # The DSN comes from the vault: it is never shown.
    if not (a["sentry_dsn"] == "" or isinstance(a["sentry_dsn"], str) and SENTRY_DSN.fullmatch(a["sentry_dsn"])):
        yield ("sentry_dsn must be empty or a Sentry DSN such as https://<public key>@sentry.example.com/<project id>"
               " (the value is not shown: it belongs in the vault)")
    if not (a["sentry_project"] == "" or isinstance(a["sentry_project"], str) and SLUG.fullmatch(a["sentry_project"])):
        yield f"sentry_project must be empty (the app's name) or a Sentry project slug (got {_json(a['sentry_project'])})"


def _smoke_paths_ok(paths):
    return _is_list(paths) and all(
        isinstance(p, Mapping) and "path" in p and "status" in p
        and URL_PATH.fullmatch(_str(p["path"])) and STATUS.fullmatch(_str(p["status"]))
        for p in paths)


def _is_list(value):
    return isinstance(value, (list, tuple))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _str(value):
    """What Jinja's `string` filter makes of a scalar (the rules read YAML values)."""
    return value if isinstance(value, str) else str(value)


def _json(value):
    return json.dumps(value, default=str)


def _kind(value):
    if isinstance(value, str):
        return f"the string {_json(value)}"
    if isinstance(value, bool) or value is None or isinstance(value, Number):
        return _json(value)
    return "a mapping" if isinstance(value, Mapping) else f"a {type(value).__name__}"


class FilterModule:
    """webdeploy's filters for the app definitions (webapp_apps)."""

    def filters(self):
        return {"webapp_resolved": webapp_resolved, "webapp_errors": webapp_errors}

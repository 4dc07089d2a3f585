"""The rules for an app's definition (plugins/filter/webapp_apps.py), one case each.

Provisioning, deploys, rollbacks, the smoke test and AWX's job templates all read
webapp_apps through these filters, so the rules are tested here, with no host. The stack
scenario keeps one "refused before any change" case per entry point
(molecule/stack/tests/test_stack_input.py): that the filter is wired in, not what it says.
"""

import importlib.util

import pytest
from sandbox_support import PROJECT

_spec = importlib.util.spec_from_file_location("webapp_apps", PROJECT / "plugins/filter/webapp_apps.py")
webapp_apps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webapp_apps)
resolved, errors = webapp_apps.webapp_resolved, webapp_apps.webapp_errors

APP = {"name": "shop", "wsgi": "shop.wsgi:application", "server_names": ["shop.example.com"]}


def app_errors(**fields):
    """The errors of APP with `fields` changed (a None value removes the field)."""
    app = {k: v for k, v in {**APP, **fields}.items() if v is not None}
    return errors([app])


def test_a_minimal_app_is_valid_and_gets_every_default():
    assert errors([APP]) == []
    (app,) = resolved([APP])
    assert app == {
        **APP, "state": "present", "package": "shop", "manage_command": "shop", "env": {}, "numprocesses": 2,
        "workers": 2, "rollout_surge": 0, "gunicorn_args": [], "graceful_timeout": 30, "backlog": 2048, "static_url": "/static/",
        "health_path": "/healthz", "smoke_paths": [{"path": "/", "status": 200}], "canary_timeout": 30,
        "check_command": ["check"], "hooks": [["migrate", "--noinput"], ["collectstatic", "--noinput"]],
        "keep_releases": 5, "tls": {}, "https_redirect": False, "hsts": False, "vhost": {}, "sentry_dsn": "",
        "sentry_project": ""}


def test_given_fields_win_over_defaults_and_the_input_is_not_changed():
    app = {**APP, "package": "shop-web", "numprocesses": 4, "hooks": []}
    (out,) = resolved([app])
    assert (out["package"], out["manage_command"], out["numprocesses"], out["hooks"]) == ("shop-web", "shop", 4, [])
    assert app == {**APP, "package": "shop-web", "numprocesses": 4, "hooks": []}


def test_the_defaults_are_not_shared_between_apps():
    a, b = resolved([APP, {**APP, "name": "blog"}])
    a["env"]["X"] = "1"
    assert resolved([APP])[0]["env"] == {} and b["name"] == "blog"


def test_no_apps_is_valid():
    assert (errors([]), errors(None), resolved([]), resolved(None)) == ([], [], [], [])


@pytest.mark.parametrize(("apps", "message"), [
    ("shop", 'webapp_apps must be a list of apps, one mapping each (got the string "shop")'),
    ({"name": "shop"}, "webapp_apps must be a list of apps, one mapping each (got a mapping)"),
    (3, "webapp_apps must be a list of apps, one mapping each (got 3)"),
])
def test_apps_not_a_list(apps, message):
    assert errors(apps) == [message]
    assert resolved(apps) == []


def test_an_entry_that_is_not_a_mapping_is_named_by_its_place():
    assert errors([APP, "blog"]) == [
        'app number 2: each app is a mapping of fields, such as {name: shop, wsgi: shop.wsgi:application}'
        ' (got the string "blog")']


def test_names_must_be_unique():
    assert errors([APP, APP]) == ["app names must be unique"]


@pytest.mark.parametrize("name", ["Shop", "1shop", "shop app", "", "a" * 33, 7, None, "shop;id"])
def test_bad_names(name):
    assert f"app {name if isinstance(name, str) else '?' if name is None else name}: " \
           "name must match ^[a-z][a-z0-9_-]{0,31}$" in app_errors(name=name)


@pytest.mark.parametrize("name", ["shop", "s", "shop_2-b", "a" * 32])
def test_good_names(name):
    assert app_errors(name=name) == []


def test_unknown_fields_are_named_with_the_known_ones():
    (message,) = app_errors(numprocess=4, wsgi_app="x")
    assert message.startswith("app shop: unknown field(s) numprocess, wsgi_app; the fields are backlog, canary_timeout, ")
    assert "reload_warmup" not in message


def test_state_must_be_present_or_absent():
    assert app_errors(state="gone") == ['app shop: state must be present or absent (got "gone")']


def test_an_absent_app_needs_only_its_name():
    assert errors([{"name": "old", "state": "absent"}]) == []


@pytest.mark.parametrize("wsgi", [None, "", "shop wsgi", "shop.wsgi:application;id", 3, "1shop", "shop:app:x"])
def test_bad_wsgi(wsgi):
    assert app_errors(wsgi=wsgi) == ["app shop: wsgi must be a module path such as webxample.wsgi:application"]


@pytest.mark.parametrize("wsgi", ["shop.wsgi", "shop.wsgi:application", "shop:create_app()", "_x.y:z"])
def test_good_wsgi(wsgi):
    assert app_errors(wsgi=wsgi) == []


@pytest.mark.parametrize("names", [None, [], "shop.example.com", {"a": 1}])
def test_server_names_missing_or_not_a_list(names):
    assert app_errors(server_names=names) == ["app shop: server_names must list at least one name"]


@pytest.mark.parametrize(("names", "shown"), [
    (["bad name.test"], '["bad name.test"]'),
    (["ok.test", ""], '["ok.test", ""]'),
    (['a"b'], '["a\\"b"]'),
    (["a;b"], '["a;b"]'),
    (["a{b"], '["a{b"]'),
    (["a#b"], '["a#b"]'),
    (["a\\b"], '["a\\\\b"]'),
    (["a\tb"], '["a\\tb"]'),
])
def test_server_names_that_nginx_would_misread(names, shown):
    assert app_errors(server_names=names) == [
        "app shop: server_names must be names without spaces, quotes, backslashes, ';', '{', '}' or '#'"
        f" (got {shown})"]


def test_server_names_may_be_wildcards_and_nginx_catch_all():
    assert app_errors(server_names=["*.shop.test", "shop.*", ".shop.test", "_", "~^www[0-9]+[.]shop$"]) == []


@pytest.mark.parametrize("field", ["package", "manage_command"])
@pytest.mark.parametrize("value", ["", "a b", "../x", 3])
def test_package_and_manage_command_are_names(field, value):
    assert app_errors(**{field: value}) == [f"app shop: {field} must be a name such as shop (got "
                                            f"{webapp_apps._json(value)})"]


@pytest.mark.parametrize("field", ["numprocesses", "workers"])
@pytest.mark.parametrize("value", [0, -1, "2", True, 2.5])
def test_process_counts(field, value):
    assert app_errors(**{field: value}) == [f"app shop: {field} must be 1 or more"]


@pytest.mark.parametrize("value", [-1, "1", True, 1.5])
def test_rollout_surge_is_a_count(value):
    assert app_errors(rollout_surge=value) == [
        "app shop: rollout_surge must be 0 (all the new processes at once) or the number of new processes"
        " a deploy starts at a time"]


def test_rollout_surge_defaults_to_all_at_once_and_reaches_the_release_role():
    assert resolved([APP])[0]["rollout_surge"] == 0
    assert app_errors(rollout_surge=1) == [] and app_errors(rollout_surge=9) == []
    assert resolved([{**APP, "rollout_surge": 1}])[0]["rollout_surge"] == 1


@pytest.mark.parametrize("value", [0, 65536, "2048", True, 1.5])
def test_socket_backlog(value):
    assert app_errors(backlog=value) == [
        "app shop: backlog must be 1 to 65535 connections (the kernel caps it at net.core.somaxconn)"]


def test_socket_backlog_reaches_the_circus_socket():
    assert app_errors(backlog=4096) == []
    assert resolved([{**APP, "backlog": 4096}])[0]["backlog"] == 4096


@pytest.mark.parametrize("value", [0, "30", False])
def test_graceful_timeout(value):
    assert app_errors(graceful_timeout=value) == ["app shop: graceful_timeout must be 1 or more seconds"]


def test_reload_warmup_is_refused_with_what_replaced_it():
    assert app_errors(reload_warmup=5) == [
        "app shop: reload_warmup is no longer used: a deploy waits until the new processes are ready,"
        " at most canary_timeout seconds; remove it"]


@pytest.mark.parametrize("value", ["many", -1, 1, 0, True])
def test_keep_releases(value):
    assert app_errors(keep_releases=value) == ["app shop: keep_releases must be 2 or more (current and previous)"]


def test_keep_releases_two_is_enough():
    assert app_errors(keep_releases=2) == []


@pytest.mark.parametrize("value", ["static/", "/static", "/st atic/", "/a;b/", 3])
def test_static_url(value):
    assert app_errors(static_url=value) == ["app shop: static_url must start and end with /"]


@pytest.mark.parametrize("value", ["/", "/assets/v2/"])
def test_good_static_url(value):
    assert app_errors(static_url=value) == []


@pytest.mark.parametrize("value", ["healthz", "/health z", "", 3])
def test_health_path(value):
    assert app_errors(health_path=value) == ["app shop: health_path must start with /"]


@pytest.mark.parametrize(("value", "shown"), [
    ([{"path": "healthz", "status": 200}], '[{"path": "healthz", "status": 200}]'),
    ([{"path": "/", "status": 600}], '[{"path": "/", "status": 600}]'),
    ([{"path": "/", "status": "ok"}], '[{"path": "/", "status": "ok"}]'),
    ([{"path": "/"}], '[{"path": "/"}]'),
    ([{"status": 200}], '[{"status": 200}]'),
    (["/"], '["/"]'),
    ("/", '"/"'),
    ({"path": "/", "status": 200}, '{"path": "/", "status": 200}'),
])
def test_bad_smoke_paths(value, shown):
    assert app_errors(smoke_paths=value) == [
        "app shop: smoke_paths must be a list of {path, status}, each path starting with / and each status"
        f" an HTTP status such as 200 (got {shown})"]


def test_smoke_paths_may_expect_any_status_and_may_be_empty():
    assert app_errors(smoke_paths=[{"path": "/admin/", "status": 302}, {"path": "/x?y=1", "status": "404"}]) == []
    assert app_errors(smoke_paths=[]) == []


@pytest.mark.parametrize("value", [0, 601, "30", True, 2.5])
def test_canary_timeout(value):
    assert app_errors(canary_timeout=value) == ["app shop: canary_timeout must be 1 to 600 seconds"]


HOOKS = "app shop: each hook and check_command is a list of arguments, e.g. [migrate, --noinput]"


@pytest.mark.parametrize("fields", [
    {"hooks": ["migrate --noinput"]},
    {"hooks": [[]]},
    {"hooks": "migrate"},
    {"hooks": [["migrate"], "collectstatic"]},
    {"check_command": "check"},
    {"check_command": []},
])
def test_hooks_and_check_command_are_argument_lists(fields):
    assert app_errors(**fields) == [HOOKS]


def test_no_hooks_is_fine():
    assert app_errors(hooks=[]) == []


def test_env_must_be_a_mapping():
    assert app_errors(env=["A=1"]) == ["app shop: env must be a mapping of variable names to values"]


def test_env_must_not_set_webdeploys_own_variables():
    assert app_errors(env={"A": "1", "WEBDEPLOY_READY_DIR": "/tmp", "WEBDEPLOY_X": "y"}) == [
        "app shop: env must not set WEBDEPLOY_* variables, webdeploy sets them (got WEBDEPLOY_READY_DIR, WEBDEPLOY_X)"]


@pytest.mark.parametrize("value", ["--timeout 60", {"timeout": 60}])
def test_gunicorn_args_must_be_a_list(value):
    assert app_errors(gunicorn_args=value) == [
        'app shop: gunicorn_args must be a list of arguments, e.g. [--timeout, "60"]']


@pytest.mark.parametrize("args", [["--config", "/etc/g.py"], ["-c", "/etc/g.py"], ["--config=/etc/g.py"],
                                  ["-c/etc/g.py"]])
def test_gunicorn_args_must_not_replace_the_readiness_hooks(args):
    assert app_errors(gunicorn_args=args) == [
        "app shop: gunicorn_args must not give --config: webdeploy passes its own settings file (the"
        " readiness hooks); give gunicorn settings as arguments instead"]


def test_other_gunicorn_args_pass():
    assert app_errors(gunicorn_args=["--timeout", 60, "--max-requests", "1000", "--capture-output"]) == []


@pytest.mark.parametrize("field", ["tls", "vhost"])
def test_tls_and_vhost_are_mappings(field):
    assert app_errors(**{field: "yes"}) == [f'app shop: {field} must be a mapping (got "yes")']


@pytest.mark.parametrize("field", ["https_redirect", "hsts"])
def test_switches_are_booleans(field):
    assert app_errors(**{field: "yes"}) == [f'app shop: {field} must be true or false (got "yes")']


def test_every_error_is_reported_at_once_for_every_app():
    bad = [{**APP, "keep_releases": 1, "health_path": "x"}, {"name": "Blog", "wsgi": "blog.wsgi", "server_names": []}]
    assert errors(bad) == [
        "app shop: keep_releases must be 2 or more (current and previous)",
        "app shop: health_path must start with /",
        "app Blog: name must match ^[a-z][a-z0-9_-]{0,31}$",
        "app Blog: server_names must list at least one name",
    ]


DSN_RULE = ("app shop: sentry_dsn must be empty or a Sentry DSN such as https://<public key>@sentry.example.com/<project"
            " id> (the value is not shown: it belongs in the vault)")


@pytest.mark.parametrize("dsn", ["https://0123abcd@o1.ingest.sentry.io/42", "http://pubkey@sentry-recorder:9000/7",
                                 "https://key@sentry.example.com/sub/path/3"])
def test_good_sentry_dsns(dsn):
    assert app_errors(sentry_dsn=dsn) == []


@pytest.mark.parametrize("dsn", ["https://sentry.example.com/42", "sentry.example.com", "https://key@host/project",
                                 "https://key:secret word@host/1", 42, None])
def test_bad_sentry_dsns_are_refused_without_showing_them(dsn):
    got = errors([{**APP, "sentry_dsn": dsn}])
    assert got == [DSN_RULE]


def test_sentry_project_is_a_slug():
    assert app_errors(sentry_project="shop-web") == []
    assert app_errors(sentry_project="Shop Web") == [
        'app shop: sentry_project must be empty (the app\'s name) or a Sentry project slug (got "Shop Web")']

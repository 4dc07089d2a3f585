"""The nginx role's ACME logic without a host: the filters that decide which certificates
certbot must obtain and with which command line (plugins/filter/acme.py), and the script
that certbot.service runs after each renewal to write the metrics
(roles/nginx/files/certbot-metrics). The real CA is in molecule/nginx (pebble)."""

import base64
import importlib.machinery
import importlib.util
import os
import subprocess

import pytest
from sandbox_support import PROJECT

spec = importlib.util.spec_from_file_location("acme", PROJECT / "plugins/filter/acme.py")
acme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(acme)

loader = importlib.machinery.SourceFileLoader("certbot_metrics", str(PROJECT / "roles/nginx/files/certbot-metrics"))
metrics_spec = importlib.util.spec_from_loader(loader.name, loader)
certbot_metrics = importlib.util.module_from_spec(metrics_spec)
loader.exec_module(certbot_metrics)

DEFAULTS = {"directory": "https://acme-v02.api.letsencrypt.org/directory", "email": "", "eab_kid": "",
            "eab_hmac_key": "", "key_type": "ecdsa"}
CA = "https://ca.test/dir"
RENEWAL = """# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/shop
cert = /etc/letsencrypt/live/shop/cert.pem

# Options used in the renewal process
[renewalparams]
account = 468e47d72af7a449cc203c6164f1c75f
key_type = {key_type}
server = {server}
authenticator = webroot
webroot_path = /var/www/acme,
[[webroot_map]]
shop.example.com = /var/www/acme
"""


def shop(**acme_settings):
    return {"name": "shop", "server_names": ["shop.example.com", "WWW.shop.example.com"],
            "tls": {"acme": {"directory": CA, **acme_settings}}}


def probes(names="DNS:shop.example.com, DNS:www.shop.example.com", rc=0, server=CA, key_type="ecdsa"):
    cert = {"rc": rc, "stdout": f"X509v3 Subject Alternative Name: \n    {names}\n" if rc == 0 else ""}
    conf = RENEWAL.format(server=server, key_type=key_type)
    renewal = {"content": base64.b64encode(conf.encode()).decode()} if rc == 0 else {"failed": True}
    return [cert], [renewal]


def state(vhost, **probe):
    return acme.acme_certificates([vhost], DEFAULTS, *probes(**probe))


def test_only_vhosts_with_an_acme_mapping_are_acme_vhosts():
    vhosts = [shop(), {"name": "blog", "tls": {"certificate": "/c.pem", "key": "/k.pem"}},
              {"name": "plain", "tls": {}}, {"name": "cleared", "tls": {"acme": None}}, {"name": "none"},
              {"name": "empty", "tls": {"acme": {}}}]
    assert [v["name"] for v in acme.acme_vhosts(vhosts)] == ["shop", "empty"]
    # TLS now: the operator's pair, and an ACME vhost once its certificate is on the host
    assert [v["name"] for v in acme.tls_vhosts(vhosts, [])] == ["blog", "cleared"]
    assert [v["name"] for v in acme.tls_vhosts(vhosts, ["shop"])] == ["shop", "blog", "cleared"]


def test_a_vhost_overrides_the_global_settings_key_by_key():
    settings = acme.acme_settings(shop(email="ops@example.com"), DEFAULTS)
    assert settings == {**DEFAULTS, "directory": CA, "email": "ops@example.com"}
    assert acme.acme_settings({"name": "x", "tls": {"acme": {}}}, DEFAULTS) == DEFAULTS


def test_a_missing_certificate_is_due_and_not_issued():
    assert state(shop(), rc=1) == {"issued": [], "due": [{"name": "shop", "reason": "no certificate yet"}]}


def test_a_certificate_that_matches_is_neither_due_nor_missing():
    # names compared without case or order
    assert state(shop(), names="DNS:www.shop.example.com, DNS:Shop.example.com") == {"issued": ["shop"], "due": []}


@pytest.mark.parametrize("probe, reason", [
    ({"names": "DNS:shop.example.com"},
     "its names change from shop.example.com to shop.example.com www.shop.example.com"),
    ({"server": "https://acme-staging-v02.api.letsencrypt.org/directory"},
     f"its CA changes from https://acme-staging-v02.api.letsencrypt.org/directory to {CA}"),
    ({"key_type": "rsa"}, "its key type changes from rsa to ecdsa"),
])
def test_a_certificate_that_differs_is_due_and_still_issued(probe, reason):
    assert state(shop(), **probe) == {"issued": ["shop"], "due": [{"name": "shop", "reason": reason}]}


def test_the_webroot_map_section_is_not_read_as_settings():
    conf = RENEWAL.format(server=CA, key_type="ecdsa") + "key_type = rsa\n"
    assert acme._renewal_params(conf)["key_type"] == "ecdsa"  # pylint: disable=protected-access


def test_certbot_command_line():
    argv = acme.certbot_certonly_argv(shop(), DEFAULTS, "/var/www/acme", "/tmp/x.ini")
    assert argv == ["certbot", "certonly", "--non-interactive", "--agree-tos", "--config", "/tmp/x.ini",
                    "--webroot", "--webroot-path", "/var/www/acme", "--cert-name", "shop", "--server", CA,
                    "--key-type", "ecdsa", "--register-unsafely-without-email",
                    "--domain", "shop.example.com", "--domain", "www.shop.example.com"]


def test_the_eab_key_is_never_on_certbots_command_line_but_in_its_config_file():
    vhost = shop(email="ops@example.com", eab_kid="kid-1", eab_hmac_key="-c2VjcmV0")  # a key may start with '-'
    redacted = acme.acme_redacted([vhost])
    assert redacted[0]["tls"]["acme"]["eab_hmac_key"] == "(secret)"
    assert vhost["tls"]["acme"]["eab_hmac_key"] == "-c2VjcmV0"  # the input is not changed
    argv = acme.certbot_certonly_argv(redacted[0], DEFAULTS, "/var/www/acme", "/tmp/x.ini", replace=True)
    assert argv[15:] == ["--email", "ops@example.com", "--no-eff-email", "--force-renewal",
                         "--domain", "shop.example.com", "--domain", "www.shop.example.com"]
    assert not [a for a in argv if "c2VjcmV0" in a or "secret" in a or "eab" in a]
    config = acme.certbot_config(redacted[0], DEFAULTS, [vhost])
    assert "eab-kid = kid-1\neab-hmac-key = -c2VjcmV0\n" in config
    assert "eab" not in acme.certbot_config(shop(), DEFAULTS, [shop()])


def test_bad_keys_are_named_without_the_key():
    vhosts = [shop(eab_kid="k", eab_hmac_key="not base64!"), {**shop(), "name": "ok"}]
    assert acme.acme_secret_errors(vhosts, "also bad") == ["nginx_acme_eab_hmac_key", "vhost shop"]
    assert acme.acme_secret_errors(vhosts[1:], "c2VjcmV0") == []


def test_vhosts_of_one_ca_must_share_one_account():
    one = shop(email="a@example.com")
    two = {**shop(email="b@example.com"), "name": "blog"}
    assert acme.acme_account_conflicts([one, two], DEFAULTS) == [
        f"{CA}: shop with email a@example.com and eab_kid (none); blog with email b@example.com and eab_kid (none)"]
    assert acme.acme_account_conflicts([one, {**one, "name": "blog"}], DEFAULTS) == []


def test_a_null_setting_means_the_default():
    assert acme.acme_settings(shop(email=None), {**DEFAULTS, "email": "ops@example.com"})["email"] == "ops@example.com"


def test_https_is_at_risk_only_without_a_certificate_or_a_pair_to_serve_meanwhile():
    with_pair = {**shop(), "name": "pair", "tls": {"acme": {}, "certificate": "/c.pem", "key": "/k.pem"}}
    vhosts = [shop(), with_pair, {**shop(), "name": "issued"}, {**shop(), "name": "new"}]
    assert acme.acme_https_at_risk(vhosts, ["issued"], ["shop", "pair", "issued"]) == ["shop"]
    assert [v["name"] for v in acme.tls_vhosts(vhosts, ["issued"])] == ["pair", "issued"]


# --- certbot-metrics -------------------------------------------------------------------

def make_certificate(path, days, name="shop.example.com"):
    """A self-signed certificate at `path` (and its key beside it); its notAfter as Unix time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(path.parent / "privkey.pem"), "-out", str(path), "-days", str(days),
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(subprocess.run(["date", "-d", end.split("=", 1)[1].strip(), "+%s"],
                              check=True, capture_output=True, text=True).stdout)


def read_metrics(directory):
    text = (directory / "webdeploy_certbot.prom").read_text(encoding="utf-8")
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines() if not line.startswith("#")}


EXPIRY = 'webdeploy_tls_certificate_expiry_timestamp_seconds{cert_name="%s"}'
SERVED_LATEST = 'webdeploy_tls_certificate_served_latest{cert_name="%s"}'


def test_metrics_after_a_success_a_failure_and_an_issuance(tmp_path, monkeypatch, capsys):
    letsencrypt, out = tmp_path / "letsencrypt", tmp_path / "metrics"
    expiry = make_certificate(letsencrypt / "live/shop/cert.pem", 10)
    (letsencrypt / "live/README").write_text("certbot's note", encoding="utf-8")
    monkeypatch.setattr(certbot_metrics, "served", lambda name: None)  # nginx does not answer

    monkeypatch.setenv("SERVICE_RESULT", "success")
    certbot_metrics.main(str(letsencrypt), str(out))  # creates the directory
    first = read_metrics(out)
    assert first["webdeploy_certbot_renew_success"] == "1"
    assert first[EXPIRY % "shop"] == str(expiry)  # the file's, as nginx did not answer
    assert SERVED_LATEST % "shop" not in first
    assert len(first) == 4  # README is not a certificate

    monkeypatch.setenv("SERVICE_RESULT", "exit-code")
    monkeypatch.setenv("EXIT_STATUS", "1")
    certbot_metrics.main(str(letsencrypt), str(out))
    assert read_metrics(out)["webdeploy_certbot_renew_success"] == "0"
    assert ("certbot renew failed (exit-code, exit status 1); the certificates in use stay in use until they expire"
            in capsys.readouterr().err)

    # Run by the role after it obtained a certificate: the certificates' metrics change,
    # the last run's result stays.
    monkeypatch.delenv("SERVICE_RESULT")
    other = make_certificate(letsencrypt / "live/blog/cert.pem", 20, name="blog.example.com")
    certbot_metrics.main(str(letsencrypt), str(out))
    last = read_metrics(out)
    assert last["webdeploy_certbot_renew_success"] == "0"
    assert last[EXPIRY % "blog"] == str(other)
    assert oct(os.stat(out / "webdeploy_certbot.prom").st_mode & 0o777) == "0o644"
    assert [p.name for p in out.iterdir()] == ["webdeploy_certbot.prom"]  # no temporary file left


def test_metrics_tell_when_nginx_serves_an_older_certificate(tmp_path, monkeypatch, capsys):
    """The deploy hook could not reload nginx: it serves the previous certificate, whose
    expiry is what clients get."""
    letsencrypt, out = tmp_path / "letsencrypt", tmp_path / "metrics"
    old_expiry = make_certificate(tmp_path / "old/cert.pem", 5)
    old_pem = (tmp_path / "old/cert.pem").read_text(encoding="utf-8")
    make_certificate(letsencrypt / "live/shop/cert.pem", 10)
    new_pem = (letsencrypt / "live/shop/cert.pem").read_text(encoding="utf-8")
    monkeypatch.setenv("SERVICE_RESULT", "success")

    monkeypatch.setattr(certbot_metrics, "served", lambda name: old_pem if name == "shop.example.com" else None)
    certbot_metrics.main(str(letsencrypt), str(out))
    stale = read_metrics(out)
    assert stale[SERVED_LATEST % "shop"] == "0"
    assert stale[EXPIRY % "shop"] == str(old_expiry)
    assert "nginx serves an older certificate than certbot's newest for shop: it was not reloaded" in capsys.readouterr().err

    monkeypatch.setattr(certbot_metrics, "served", lambda name: new_pem)
    certbot_metrics.main(str(letsencrypt), str(out))
    assert read_metrics(out)[SERVED_LATEST % "shop"] == "1"


def test_a_certificate_of_other_names_served_is_not_taken_for_it(tmp_path, monkeypatch):
    letsencrypt, out = tmp_path / "letsencrypt", tmp_path / "metrics"
    expiry = make_certificate(letsencrypt / "live/shop/cert.pem", 10)
    make_certificate(tmp_path / "other/cert.pem", 3, name="other.example.com")
    other_pem = (tmp_path / "other/cert.pem").read_text(encoding="utf-8")
    monkeypatch.setattr(certbot_metrics, "served", lambda name: other_pem)
    monkeypatch.delenv("SERVICE_RESULT", raising=False)
    certbot_metrics.main(str(letsencrypt), str(out))
    metrics = read_metrics(out)
    assert metrics[EXPIRY % "shop"] == str(expiry)
    assert SERVED_LATEST % "shop" not in metrics


def test_metrics_label_values_are_escaped():
    assert certbot_metrics.label('a"b\\c') == 'a\\"b\\\\c'

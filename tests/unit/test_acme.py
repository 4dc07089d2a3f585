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
    argv = acme.certbot_certonly_argv(shop(), DEFAULTS, "/var/www/acme")
    assert argv == ["certbot", "certonly", "--non-interactive", "--agree-tos", "--webroot", "--webroot-path",
                    "/var/www/acme", "--cert-name", "shop", "--server", CA, "--key-type", "ecdsa",
                    "--register-unsafely-without-email",
                    "--domain", "shop.example.com", "--domain", "www.shop.example.com"]


def test_certbot_command_line_with_email_eab_and_replacement():
    argv = acme.certbot_certonly_argv(shop(email="ops@example.com", eab_kid="kid-1", eab_hmac_key="c2VjcmV0"),
                                      DEFAULTS, "/var/www/acme", replace=True)
    assert argv[13:] == ["--email", "ops@example.com", "--no-eff-email", "--eab-kid", "kid-1",
                         "--eab-hmac-key", "c2VjcmV0", "--force-renewal",
                         "--domain", "shop.example.com", "--domain", "www.shop.example.com"]


# --- certbot-metrics -------------------------------------------------------------------

def make_certificate(path, days):
    path.parent.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(path.parent / "privkey.pem"), "-out", str(path), "-days", str(days),
                    "-subj", "/CN=shop.example.com"], check=True, capture_output=True)
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(subprocess.run(["date", "-d", end.split("=", 1)[1].strip(), "+%s"],
                              check=True, capture_output=True, text=True).stdout)


def read_metrics(directory):
    text = (directory / "webdeploy_certbot.prom").read_text(encoding="utf-8")
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines() if not line.startswith("#")}


def test_metrics_after_a_success_a_failure_and_an_issuance(tmp_path, monkeypatch, capsys):
    letsencrypt, out = tmp_path / "letsencrypt", tmp_path / "metrics"
    expiry = make_certificate(letsencrypt / "live/shop/cert.pem", 10)
    (letsencrypt / "live/README").write_text("certbot's note", encoding="utf-8")
    expiry_name = 'webdeploy_tls_certificate_expiry_timestamp_seconds{cert_name="shop"}'

    monkeypatch.setenv("SERVICE_RESULT", "success")
    certbot_metrics.main(str(letsencrypt), str(out))  # creates the directory
    first = read_metrics(out)
    assert first["webdeploy_certbot_renew_success"] == "1"
    assert first[expiry_name] == str(expiry)
    assert len(first) == 3  # README is not a certificate

    monkeypatch.setenv("SERVICE_RESULT", "exit-code")
    monkeypatch.setenv("EXIT_STATUS", "1")
    certbot_metrics.main(str(letsencrypt), str(out))
    assert read_metrics(out)["webdeploy_certbot_renew_success"] == "0"
    assert ("certbot renew failed (exit-code, exit status 1); the certificates in use stay in use until they expire"
            in capsys.readouterr().err)

    # Run by the role after it obtained a certificate: the expiries change, the last
    # run's result stays.
    monkeypatch.delenv("SERVICE_RESULT")
    other = make_certificate(letsencrypt / "live/blog/cert.pem", 20)
    certbot_metrics.main(str(letsencrypt), str(out))
    last = read_metrics(out)
    assert last["webdeploy_certbot_renew_success"] == "0"
    assert last['webdeploy_tls_certificate_expiry_timestamp_seconds{cert_name="blog"}'] == str(other)
    assert oct(os.stat(out / "webdeploy_certbot.prom").st_mode & 0o777) == "0o644"
    assert [p.name for p in out.iterdir()] == ["webdeploy_certbot.prom"]  # no temporary file left


def test_metrics_label_values_are_escaped():
    assert certbot_metrics.label('a"b\\c') == 'a\\"b\\\\c'

"""Filters for the nginx role's ACME certificates (certbot): each vhost's settings, which
certificates are on the host and which must be obtained, and certbot's command line.

A certificate is named after its vhost (certbot's --cert-name): /etc/letsencrypt/live/<name>/.
"""

import base64
import re

SAN_DNS = re.compile(r"DNS:([^,\s]+)")
CONF_LINE = re.compile(r"^\s*([a-z_]+)\s*=\s*(.*?)\s*$")


def _is_acme(vhost):
    return isinstance((vhost.get("tls") or {}).get("acme"), dict)


def acme_vhosts(vhosts):
    """The vhosts whose certificate comes from an ACME CA (tls.acme is a mapping)."""
    return [v for v in vhosts if _is_acme(v)]


def tls_vhosts(vhosts, issued):
    """The vhosts that serve TLS now: an operator's pair, or an ACME certificate whose
    vhost name is in `issued` (its certificate is on the host)."""
    return [v for v in vhosts if v.get("tls") and (not _is_acme(v) or v["name"] in issued)]


def acme_settings(vhost, defaults):
    """The vhost's tls.acme over the role's nginx_acme_* defaults."""
    settings = dict(defaults)
    settings.update((vhost.get("tls") or {}).get("acme") or {})
    return settings


def _renewal_params(text):
    """The `key = value` settings of the [renewalparams] section of a certbot renewal file
    (server, key_type, authenticator, ...)."""
    section, params = "", {}
    for line in text.splitlines():
        header = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*$", line)
        if header:
            section = header.group(1)
        elif section == "renewalparams":
            setting = CONF_LINE.match(line)
            if setting:
                params[setting.group(1)] = setting.group(2)
    return params


def acme_certificates(vhosts, defaults, cert_probes, renewal_probes):
    """Which ACME certificates exist and which must be obtained now.

    cert_probes: the results of `openssl x509 -noout -ext subjectAltName` per vhost (rc 0
    when the certificate exists); renewal_probes: the results of slurping each
    renewal/<name>.conf (content in base64, absent when the file is missing), both in
    the order of `vhosts`. Returns {"issued": [name, ...], "due": [{"name", "reason"}, ...]}:
    due when there is no certificate, or its names, CA or key type are not the vhost's.
    """
    issued, due = [], []
    for vhost, cert, renewal in zip(vhosts, cert_probes, renewal_probes):
        name = vhost["name"]
        settings = acme_settings(vhost, defaults)
        if cert.get("rc") != 0:
            due.append({"name": name, "reason": "no certificate yet"})
            continue
        issued.append(name)
        have_names = sorted({n.lower() for n in SAN_DNS.findall(cert.get("stdout", ""))})
        want_names = sorted({n.lower() for n in vhost["server_names"]})
        conf = _renewal_params(base64.b64decode(renewal["content"]).decode("utf-8", "replace")
                             if renewal.get("content") else "")
        if have_names != want_names:
            due.append({"name": name, "reason": f"its names change from {' '.join(have_names)} to {' '.join(want_names)}"})
        elif conf.get("server", settings["directory"]) != settings["directory"]:
            due.append({"name": name, "reason": f"its CA changes from {conf['server']} to {settings['directory']}"})
        elif conf.get("key_type", settings["key_type"]) != settings["key_type"]:
            due.append({"name": name, "reason": f"its key type changes from {conf['key_type']} to {settings['key_type']}"})
    return {"issued": issued, "due": due}


def certbot_certonly_argv(vhost, defaults, webroot, replace=False):
    """certbot's command line that obtains the vhost's certificate with the webroot challenge.

    replace: a certificate of that name exists and is replaced now (new names, CA or key
    type), not when it would be due.
    """
    settings = acme_settings(vhost, defaults)
    argv = ["certbot", "certonly", "--non-interactive", "--agree-tos", "--webroot", "--webroot-path", webroot,
            "--cert-name", vhost["name"], "--server", settings["directory"], "--key-type", settings["key_type"]]
    if settings.get("email"):
        argv += ["--email", settings["email"], "--no-eff-email"]
    else:
        argv += ["--register-unsafely-without-email"]
    if settings.get("eab_kid"):
        argv += ["--eab-kid", settings["eab_kid"], "--eab-hmac-key", settings["eab_hmac_key"]]
    if replace:
        argv += ["--force-renewal"]
    for server_name in vhost["server_names"]:
        argv += ["--domain", server_name.lower()]
    return argv


class FilterModule:
    """ACME filters."""

    def filters(self):
        return {
            "acme_vhosts": acme_vhosts,
            "tls_vhosts": tls_vhosts,
            "acme_settings": acme_settings,
            "acme_certificates": acme_certificates,
            "certbot_certonly_argv": certbot_certonly_argv,
        }

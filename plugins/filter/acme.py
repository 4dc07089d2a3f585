"""Filters for the nginx role's ACME certificates (certbot): each vhost's settings, which
certificates are on the host and which must be obtained, and certbot's command line.

A certificate is named after its vhost (certbot's --cert-name): /etc/letsencrypt/live/<name>/.

The EAB HMAC key is a secret: the role loops over vhosts whose key is replaced by
REDACTED (acme_redacted), so no task output shows it; certbot reads it from a 0600
config file (certbot_config), never from its command line (ps, certbot's own log).
"""

import base64
import re

REDACTED = "(secret)"
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+=*$")
SAN_DNS = re.compile(r"DNS:([^,\s]+)")
CONF_LINE = re.compile(r"^\s*([a-z_]+)\s*=\s*(.*?)\s*$")


def _is_acme(vhost):
    return isinstance((vhost.get("tls") or {}).get("acme"), dict)


def acme_vhosts(vhosts):
    """The vhosts whose certificate comes from an ACME CA (tls.acme is a mapping)."""
    return [v for v in vhosts if _is_acme(v)]


def _has_pair(vhost):
    tls = vhost.get("tls") or {}
    return bool(tls.get("certificate")) and bool(tls.get("key"))


def tls_vhosts(vhosts, issued):
    """The vhosts that serve TLS now: an operator's pair, an ACME certificate whose vhost
    name is in `issued` (on the host), or, until then, the pair given beside acme."""
    return [v for v in vhosts if v.get("tls") and (not _is_acme(v) or v["name"] in issued or _has_pair(v))]


def acme_settings(vhost, defaults):
    """The vhost's tls.acme over the role's nginx_acme_* defaults (a null key: the default)."""
    settings = dict(defaults)
    settings.update({k: v for k, v in ((vhost.get("tls") or {}).get("acme") or {}).items() if v is not None})
    return settings


def acme_redacted(vhosts):
    """The vhosts with each tls.acme.eab_hmac_key that is set replaced by REDACTED."""
    out = []
    for vhost in vhosts:
        key = (vhost.get("tls") or {}).get("acme", {}).get("eab_hmac_key") if _is_acme(vhost) else None
        if key:
            vhost = {**vhost, "tls": {**vhost["tls"], "acme": {**vhost["tls"]["acme"], "eab_hmac_key": REDACTED}}}
        out.append(vhost)
    return out


def acme_secret_errors(vhosts, global_key):
    """What holds an EAB HMAC key that is not base64url: "nginx_acme_eab_hmac_key" and/or
    the names of the vhosts (never the key itself)."""
    errors = ["nginx_acme_eab_hmac_key"] if global_key and not BASE64URL.match(str(global_key)) else []
    for vhost in acme_vhosts(vhosts):
        key = vhost["tls"]["acme"].get("eab_hmac_key")
        if key and not BASE64URL.match(str(key)):
            errors.append(f"vhost {vhost['name']}")
    return errors


def acme_account_conflicts(vhosts, defaults):
    """certbot keeps one account per CA on a host, registered with the email and EAB of
    the first certificate it obtained there: vhosts of one CA must agree on them. Returns
    one sentence per CA whose vhosts differ."""
    by_ca = {}
    for vhost in acme_vhosts(vhosts):
        settings = acme_settings(vhost, defaults)
        account = (settings["email"] or "(none)", settings["eab_kid"] or "(none)")
        by_ca.setdefault(settings["directory"], {}).setdefault(account, []).append(vhost["name"])
    return [f"{ca}: " + "; ".join(f"{', '.join(names)} with email {email} and eab_kid {kid}"
                                  for (email, kid), names in sorted(accounts.items()))
            for ca, accounts in sorted(by_ca.items()) if len(accounts) > 1]


def acme_https_at_risk(vhosts, issued, serving_tls):
    """ACME vhosts whose certificate is not on the host yet, that serve HTTPS now (their
    names in `serving_tls`) and have no pair beside acme to keep serving it meanwhile."""
    return [v["name"] for v in acme_vhosts(vhosts)
            if v["name"] not in issued and v["name"] in serving_tls and not _has_pair(v)]


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


def certbot_certonly_argv(vhost, defaults, webroot, config, replace=False):
    """certbot's command line that obtains the vhost's certificate with the webroot
    challenge, reading `config` (certbot_config's file) for the EAB credentials.

    replace: a certificate of that name exists and is replaced now (new names, CA or key
    type), not when it would be due.
    """
    settings = acme_settings(vhost, defaults)
    argv = ["certbot", "certonly", "--non-interactive", "--agree-tos", "--config", config,
            "--webroot", "--webroot-path", webroot,
            "--cert-name", vhost["name"], "--server", settings["directory"], "--key-type", settings["key_type"]]
    if settings.get("email"):
        argv += ["--email", settings["email"], "--no-eff-email"]
    else:
        argv += ["--register-unsafely-without-email"]
    if replace:
        argv += ["--force-renewal"]
    for server_name in vhost["server_names"]:
        argv += ["--domain", server_name.lower()]
    return argv


def certbot_config(vhost, defaults, unredacted):
    """The certbot config file of the vhost's run: Debian's settings, and its EAB
    credentials taken from `unredacted` (the vhosts before acme_redacted)."""
    original = next(v for v in unredacted if v["name"] == vhost["name"])
    settings = acme_settings(original, defaults)
    lines = ["# Written by the nginx role for one run of certbot, then removed.",
             "max-log-backups = 0"]
    if settings.get("eab_kid"):
        lines += [f"eab-kid = {settings['eab_kid']}", f"eab-hmac-key = {settings['eab_hmac_key']}"]
    return "\n".join(lines) + "\n"


class FilterModule:
    """ACME filters."""

    def filters(self):
        return {
            "acme_vhosts": acme_vhosts,
            "acme_redacted": acme_redacted,
            "acme_secret_errors": acme_secret_errors,
            "acme_account_conflicts": acme_account_conflicts,
            "acme_https_at_risk": acme_https_at_risk,
            "certbot_config": certbot_config,
            "tls_vhosts": tls_vhosts,
            "acme_settings": acme_settings,
            "acme_certificates": acme_certificates,
            "certbot_certonly_argv": certbot_certonly_argv,
        }

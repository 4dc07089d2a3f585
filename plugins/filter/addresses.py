"""Filters for IP addresses and networks given as input (the exporters role's allowed
sources, the prometheus role's listen addresses), without the netaddr package that
ansible.utils.ipaddr needs: the standard library's ipaddress is enough here."""

import ipaddress


def _network(value):
    """`value` as an ip_network (a bare address is a /32 or /128), or None if it is not one."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None


def address_errors(values):
    """The entries of `values` that are not an IPv4 or IPv6 address or network, as given."""
    return [v for v in values if not isinstance(v, str) or _network(v) is None]


def address_families(values):
    """{"v4": [...], "v6": [...]}: the valid entries of `values` in nftables' notation
    (an address alone, or network/prefix), by family, without duplicates, in the order
    given."""
    found = {"v4": [], "v6": []}
    for v in values:
        net = _network(v) if isinstance(v, str) else None
        if net is None:
            continue
        text = str(net.network_address) if net.num_addresses == 1 else str(net)
        key = "v4" if net.version == 4 else "v6"
        if text not in found[key]:
            found[key].append(text)
    return found


class FilterModule:
    """webdeploy's filters for addresses given as input."""

    def filters(self):
        return {"address_errors": address_errors, "address_families": address_families}

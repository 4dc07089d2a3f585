"""plugins/filter/addresses.py: which sources the exporters' firewall lets in, by family,
and the entries refused before anything changes."""

import importlib.util

from sandbox_support import PROJECT

spec = importlib.util.spec_from_file_location("addresses", PROJECT / "plugins/filter/addresses.py")
addresses = importlib.util.module_from_spec(spec)
spec.loader.exec_module(addresses)


def test_addresses_and_networks_split_by_family():
    got = addresses.address_families(["10.88.0.5", "192.168.0.0/24", "fd00::1", "2001:db8::/32", "10.88.0.5",
                                      "10.0.0.7/32", "192.168.1.9/24"])
    # a /32 is written as the address; a network keeps its prefix (host bits cleared)
    assert got == {"v4": ["10.88.0.5", "192.168.0.0/24", "10.0.0.7", "192.168.1.0/24"],
                   "v6": ["fd00::1", "2001:db8::/32"]}


def test_invalid_entries_are_named_as_given():
    assert addresses.address_errors(["10.88.0.5", "monitor1", "10.0.0.300", "", 5, "fd00::/129"]) == [
        "monitor1", "10.0.0.300", "", 5, "fd00::/129"]
    assert addresses.address_errors(["127.0.0.1", "::1"]) == []


def test_nothing_valid_gives_empty_families():
    assert addresses.address_families(["monitor1", None]) == {"v4": [], "v6": []}

"""The doctor's DHCP checks (_dhcp_client.doctor_problems, the kvmhost.bridging.dhcp_problems filter)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kvmhost.bridging.plugins.filter.dhcp_problems import FilterModule
from ansible_collections.kvmhost.bridging.plugins.module_utils._dhcp_client import doctor_problems

FOREVER = 4294967295


def link(name, master=None, kind=None, addresses=()):
    entry = {"ifname": name, "addr_info": list(addresses)}
    if master:
        entry["master"] = master
    if kind:
        entry["linkinfo"] = {"info_kind": kind}
    return entry


def v4(ip, valid=FOREVER):
    return {"family": "inet", "local": ip, "prefixlen": 24, "scope": "global", "valid_life_time": valid}


def v6(ip, prefixlen, valid, **flags):
    return dict({"family": "inet6", "local": ip, "prefixlen": prefixlen, "scope": "global", "valid_life_time": valid}, **flags)


LINKS = [link("lo", addresses=[v4("127.0.0.1")]), link("eth1", master="breth0"), link("breth0", kind="bridge", addresses=[v4("198.19.0.114", 97)])]
ON_PORT = {"pid": 812, "argv": ["dhclient", "-1", "-q", "-lf", "/var/lib/dhclient/dhclient--eth1.lease", "-pf", "/var/run/dhclient-eth1.pid", "eth1"]}
ON_BRIDGE = {
    "pid": 813,
    "argv": ["/sbin/dhclient", "-1", "-q", "-lf", "/var/lib/dhclient/dhclient--breth0.lease", "-pf", "/var/run/dhclient-breth0.pid", "breth0"],
}


def test_client_on_a_port_and_an_unrenewed_lease():
    problems = doctor_problems(LINKS, [ON_PORT])
    assert [(p["check"], p["subject"]) for p in problems] == [("dhcp_port", "eth1"), ("dhcp_expiry", "198.19.0.114/24 on breth0")]
    port, expiry = problems
    assert "dhclient (pid 812) runs on eth1, a port of breth0" in port["problem"]
    assert "kill 812, then run dhclient -1 -q -lf /var/lib/dhclient/dhclient--breth0.lease -pf /var/run/dhclient-breth0.pid breth0" in port["fix"]
    assert "expires in 97 s" in expiry["problem"] and "move dhclient from eth1 to breth0" in expiry["fix"]


def test_healthy_host_has_no_problem():
    assert doctor_problems(LINKS, [ON_BRIDGE]) == []
    static = [link("eth1", master="breth0"), link("breth0", kind="bridge", addresses=[v4("198.19.0.114")])]
    assert doctor_problems(static, []) == []


def test_lease_without_any_client_says_how_to_start_one():
    [problem] = doctor_problems(LINKS, [])
    assert problem["check"] == "dhcp_expiry" and "start the DHCP client on breth0 (dhclient breth0" in problem["fix"]


def test_network_daemons_renew_their_own_leases():
    assert doctor_problems(LINKS, [], ["NetworkManager"]) == []
    assert doctor_problems(LINKS, [], ["systemd-networkd"]) == []


@pytest.mark.parametrize(
    ("address", "flagged"),
    [(v6("fd00:198:19::8c0", 128, 3600), True), (v6("fd00:198:19::5054:ff:fe00:2", 64, 86400), False),
     (v6("fd00:198:19::1c2d", 128, 600, temporary=True), False)],
)  # fmt: skip
def test_ipv6_dhcpv6_leases_are_checked_slaac_is_the_kernels(address, flagged):
    links = [link("eth1", master="breth0"), link("breth0", kind="bridge", addresses=[address])]
    assert bool(doctor_problems(links, [])) is flagged
    assert doctor_problems(links, [{"pid": 9, "argv": ["dhclient", "-6", "breth0"]}]) == []


def test_skip_and_odd_lines():
    assert doctor_problems(LINKS, [ON_PORT, {}, {"pid": 5, "argv": ["sshd"]}], skip=("dhcp_port", "dhcp_expiry")) == []
    assert [p["check"] for p in doctor_problems(LINKS, [ON_PORT], skip=("dhcp_expiry",))] == ["dhcp_port"]


def test_filter():
    dhcp_problems = FilterModule().filters()["dhcp_problems"]
    assert len(dhcp_problems(LINKS, [ON_PORT])) == 2
    with pytest.raises(AnsibleFilterError):
        dhcp_problems("text", [])

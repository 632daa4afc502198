"""The guard's restore of what a bridging moves: DHCP clients, and the routes of NetworkManager-style addresses."""

from __future__ import annotations

from socket import AF_INET

from ansible_collections.kvmhost.bridging.plugins.module_utils import _dhcp_client as dc
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_apply as ka
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks
from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_plan import Step

ON_NIC = ["dhclient", "-1", "-q", "-lf", "/var/lib/dhcp/dhclient--eth1.lease", "-pf", "/run/dhclient-eth1.pid", "eth1"]
ON_BRIDGE = ["dhclient", "-1", "-q", "-lf", "/var/lib/dhcp/dhclient--breth0.lease", "-pf", "/run/dhclient-breth0.pid", "breth0"]
ELSEWHERE = ["dhclient", "eth7"]


def test_the_client_goes_back_to_the_nic():
    now = [dc.parse_client(ON_BRIDGE, 20), dc.parse_client(ELSEWHERE, 21)]
    stops, starts = ka.plan_client_restore([ON_NIC, ELSEWHERE], now, {"eth1", "breth0"})
    assert stops == [Step("stop_dhcp_client", "stop %s" % " ".join(ON_BRIDGE), {"argv": tuple(ON_BRIDGE)})]
    assert starts == [Step("start_dhcp_client", "start %s" % " ".join(ON_NIC), {"argv": tuple(ON_NIC)})]


def test_nothing_to_do_when_the_clients_are_as_saved_or_out_of_scope():
    assert ka.plan_client_restore([ON_NIC], [dc.parse_client(ON_NIC, 5)], {"eth1", "breth0"}) == ([], [])
    assert ka.plan_client_restore([ELSEWHERE], [], {"eth1", "breth0"}) == ([], [])
    assert ka.plan_client_restore([], [dc.parse_client(ELSEWHERE, 5)], {"eth1"}) == ([], [])


def _nm_state(dev, with_bridge):
    links = [ks.Link(1, "lo", loopback=True, up=True), ks.Link(3, "eth1", up=True, master="breth0" if with_bridge else None)]
    if with_bridge:
        links.append(ks.Link(4, "breth0", kind="bridge", up=True))
    addresses = [ks.Address(dev, AF_INET, "198.19.0.114", 24, local="198.19.0.114", flags=ks.IFA_F_NOPREFIXROUTE, valid=3600, preferred=3600)]
    routes = [
        ks.Route(AF_INET, proto=16, dev=dev, gateway="198.19.0.1", prefsrc="198.19.0.114", priority=100),
        ks.Route(AF_INET, dst="198.19.0.0", dst_len=24, proto=2, scope=253, dev=dev, prefsrc="198.19.0.114", priority=100),
    ]
    return ks.Snapshot(links, addresses, routes)


def test_restore_puts_back_the_explicit_prefix_route_before_the_default_route():
    steps = ka.plan_restore(_nm_state("eth1", False), _nm_state("breth0", True), ["eth1", "breth0"])
    restores = [step.description for step in steps if step.op == "replace_route"]
    assert restores == [
        "restore route '198.19.0.0/24 dev eth1 proto kernel scope link src 198.19.0.114 metric 100'",
        "restore route 'default via 198.19.0.1 dev eth1 proto dhcp src 198.19.0.114 metric 100'",
    ]

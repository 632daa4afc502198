"""_bridge_plan planning, simulation, _kernel_apply applying and _bridge_runtime, on hand-built snapshots (no root, no kernel)."""

from __future__ import annotations

import copy
import dataclasses
import errno
from socket import AF_INET, AF_INET6

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from ansible_collections.kvmhost.bridging.plugins.module_utils import _bridge_plan as bp
from ansible_collections.kvmhost.bridging.plugins.module_utils import _bridge_runtime as br
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_apply as ka
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

ETH0_MAC = "52:54:00:00:00:01"
ETH1_MAC = "52:54:00:00:00:02"


def host_snapshot(extra_links=(), extra_addresses=(), extra_routes=()):
    """A KVM host: eth0 carries the management address, the default routes and a policy route; eth1 has nothing."""
    links = [
        ks.Link(1, "lo", mac="00:00:00:00:00:00", mtu=65536, up=True, loopback=True),
        ks.Link(2, "eth0", mac=ETH0_MAC, up=True),
        ks.Link(3, "eth1", mac=ETH1_MAC, up=False),
        ks.Link(4, "vnet0", kind="tun", mac="fe:54:00:00:00:03", up=True),
        *extra_links,
    ]
    addresses = [
        ks.Address("lo", AF_INET, "127.0.0.1", 8, local="127.0.0.1", scope=254, flags=0x80, label="lo"),
        ks.Address("eth0", AF_INET, "198.18.0.2", 24, local="198.18.0.2", broadcast="198.18.0.255", label="eth0", flags=0x80),
        ks.Address("eth0", AF_INET, "198.18.0.3", 24, local="198.18.0.3", broadcast="198.18.0.255", label="eth0:1", flags=0x81),
        ks.Address("eth0", AF_INET6, "2001:db8::2", 64, flags=0x80),
        ks.Address("eth0", AF_INET6, "fe80::5054:ff:fe00:1", 64, scope=253, flags=0x80),
        *extra_addresses,
    ]
    routes = [
        ks.Route(AF_INET, dst="198.18.0.0", dst_len=24, proto=2, scope=253, dev="eth0", prefsrc="198.18.0.2"),
        ks.Route(AF_INET, proto=3, dev="eth0", gateway="198.18.0.1"),
        ks.Route(AF_INET, table=100, dst="198.18.99.0", dst_len=24, proto=4, dev="eth0", gateway="198.18.0.1", priority=5, metrics=(("RTAX_MTU", 1400),)),
        ks.Route(AF_INET, table=255, type=2, dst="198.18.0.2", dst_len=32, proto=2, scope=254, dev="eth0", prefsrc="198.18.0.2"),
        ks.Route(AF_INET6, dst="2001:db8::", dst_len=64, proto=2, dev="eth0", priority=256),
        ks.Route(AF_INET6, dst="fe80::", dst_len=64, proto=2, dev="eth0", priority=256),
        ks.Route(AF_INET6, proto=3, dev="eth0", gateway="2001:db8::1", priority=100, pref=0),
        ks.Route(AF_INET6, proto=9, dev="eth0", gateway="fe80::1", priority=1024, unsupported=("RTA_EXPIRES",)),
        *extra_routes,
    ]
    return ks.Snapshot(links, addresses, routes)


def spec(**params):
    base = {
        "name": "breth0",
        "state": "present",
        "ports": ["eth0"],
        "ports_exclusive": False,
        "mac": "inherit",
        "migrate_addresses": True,
        "up": True,
        "force": False,
        "mtu": None,
    }
    base.update(dict.fromkeys(ks.BRIDGE_OPTION_NAMES))
    base.update(params)
    return bp.BridgeSpec.from_params(base)


def ops(plan):
    return [(step.op, step.description) for step in plan.steps]


def position(plan, prefix):
    return next(i for i, step in enumerate(plan.steps) if step.description.startswith(prefix))


# -- the migration ---------------------------------------------------------------------------
def test_migration_plan_keeps_the_connection_order():
    snap = host_snapshot()
    plan = bp.plan_bridge(snap, spec(stp=False, forward_delay=0), ["198.18.0.2"])
    assert plan.actions == [
        "create bridge breth0 (mac %s, stp false, forward_delay 0s)" % ETH0_MAC,
        "bring breth0 up",
        "add 198.18.0.2/24 to breth0 (from eth0)",
        "add 198.18.0.3/24 to breth0 (from eth0)",
        "add 2001:db8::2/64 to breth0 (from eth0)",
        "attach eth0 to breth0",
        "move route 'default via 198.18.0.1 dev eth0 proto boot' to breth0",
        "move route '198.18.99.0/24 via 198.18.0.1 dev eth0 table 100 proto static metric 5' to breth0",
        "move route 'default via 2001:db8::1 dev eth0 proto boot metric 100' to breth0",
        "remove 2001:db8::2/64 from eth0",
        "remove 198.18.0.3/24 from eth0",
        "remove 198.18.0.2/24 from eth0",
    ]
    create = plan.steps[0]
    assert create.args == {"name": "breth0", "mac": ETH0_MAC, "mtu": None, "options": {"stp": 0, "forward_delay": 0}}
    assert create.undo == (("delete_link", {"name": "breth0"}),)


def test_moved_addresses_keep_their_attributes():
    plan = bp.plan_bridge(host_snapshot(), spec(), ["198.18.0.2"])
    added = [step.args["address"] for step in plan.steps if step.op == "add_address"]
    primary, secondary, v6 = added
    assert (primary.dev, primary.prefixlen, primary.broadcast, primary.label, primary.flags) == ("breth0", 24, "198.18.0.255", None, 0)
    assert secondary.label == "breth0:1"
    assert v6.flags & ks.IFA_F_NODAD  # already ours on this link: no duplicate address detection
    removed = [step.args["address"] for step in plan.steps if step.op == "del_address"]
    assert [a.cidr for a in removed] == ["2001:db8::2/64", "198.18.0.3/24", "198.18.0.2/24"]
    assert all(a.dev == "eth0" for a in removed)
    # Undoing a removal puts back the very same address, label and flags included.
    assert all(step.undo == (("add_address", {"address": step.args["address"]}),) for step in plan.steps if step.op == "del_address")


def test_moved_routes_keep_gateway_metric_table_protocol_and_metrics():
    snap = host_snapshot()
    plan = bp.plan_bridge(snap, spec(), ())
    moves = [step.args for step in plan.steps if step.op == "replace_route"]
    assert len(moves) == 3
    for move in moves:
        old, new = move["old"], move["route"]
        assert old.dev == "eth0" and new.dev == "breth0"
        assert new == dataclasses.replace(old, dev="breth0")
        assert new.key == old.key
    table100 = next(m["route"] for m in moves if m["route"].table == 100)
    assert (table100.priority, table100.proto, table100.metrics) == (5, 4, (("RTAX_MTU", 1400),))


def test_kernel_routes_and_link_local_addresses_stay():
    plan = bp.plan_bridge(host_snapshot(), spec(), ())
    text = " ".join(plan.actions)
    assert "fe80" not in text
    assert "proto kernel" not in text and "proto ra" not in text


def test_migration_off_only_attaches():
    snap = host_snapshot()
    plan = bp.plan_bridge(snap, spec(ports=["eth1"], migrate_addresses=False), ["198.18.0.2"])
    assert [op for op, _unused in ops(plan)] == ["create_bridge", "set_link", "set_link", "set_link"]
    assert plan.actions[2:] == ["attach eth1 to breth0", "bring port eth1 up"]


def test_multipath_routes_move_only_their_port_hops():
    route = ks.Route(AF_INET, dst="198.18.77.0", dst_len=24, proto=4, multipath=(ks.Nexthop("eth0", "198.18.0.1"), ks.Nexthop("eth9", "198.18.9.1", hops=1)))
    snap = host_snapshot(extra_links=[ks.Link(9, "eth9", up=True)], extra_routes=[route])
    plan = bp.plan_bridge(snap, spec(), ())
    moved = next(step.args["route"] for step in plan.steps if step.op == "replace_route" and step.args["old"] == route)
    assert moved.multipath == (ks.Nexthop("breth0", "198.18.0.1"), ks.Nexthop("eth9", "198.18.9.1", hops=1))


def test_route_that_cannot_be_copied_stops_the_plan():
    odd = ks.Route(AF_INET, dst="198.18.50.0", dst_len=24, proto=4, dev="eth0", unsupported=("RTA_ENCAP",))
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(host_snapshot(extra_routes=[odd]), spec(), ())
    assert "RTA_ENCAP" in exc.value.msg and "migrate_addresses: false" in exc.value.msg


def test_address_already_on_the_bridge_is_only_removed_from_the_port():
    snap = host_snapshot(
        extra_links=[ks.Link(7, "breth0", kind="bridge", mac=ETH0_MAC, up=True, bridge=dict(ks.BRIDGE_DEFAULTS))],
        extra_addresses=[ks.Address("breth0", AF_INET, "198.18.0.2", 24, local="198.18.0.2", flags=0x80)],
    )
    plan = bp.plan_bridge(snap, spec(), ())
    assert "add 198.18.0.2/24 to breth0 (from eth0)" not in plan.actions
    assert "remove 198.18.0.2/24 from eth0" in plan.actions


def test_same_address_with_another_prefix_is_refused():
    snap = host_snapshot(
        extra_links=[ks.Link(7, "breth0", kind="bridge", up=True)],
        extra_addresses=[ks.Address("breth0", AF_INET, "198.18.0.2", 16, local="198.18.0.2")],
    )
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(snap, spec(), ())
    assert "on eth0 as /24 and on breth0 as /16" in exc.value.msg


# -- idempotence: the plan of the simulated result is empty ------------------------------------
SPECS = {
    "migrate eth0": {"ports": ["eth0"], "stp": False, "forward_delay": 0},
    "eth1 and a tap": {"ports": ["eth1", "vnet0"], "forward_delay": 0, "priority": 100},
    "tap only, keep mac": {"ports": ["vnet0"], "mac": "keep"},
    "explicit mac and mtu": {"ports": ["eth1"], "mac": "02:00:00:00:00:0a", "mtu": 1400},
    "stp on": {"ports": ["eth1"], "stp": True, "forward_delay": 4, "hello_time": 1, "max_age": 10, "ageing_time": 60},
    "created down": {"ports": ["eth1"], "up": False},
    "no ports": {"ports": [], "vlan_filtering": True},
}


@pytest.mark.parametrize("case", sorted(SPECS))
def test_simulated_result_plans_nothing(case):
    snap = host_snapshot()
    wanted = spec(**SPECS[case])
    plan = bp.plan_bridge(snap, wanted, ())
    assert plan.changed
    after = bp.simulate(snap, plan.steps)
    again = bp.plan_bridge(after, wanted, ())
    assert again.actions == []


def test_planning_is_pure():
    snap = host_snapshot()
    frozen = copy.deepcopy(snap.__dict__)
    bp.plan_bridge(snap, spec(stp=True), ())
    bp.simulate(snap, bp.plan_bridge(snap, spec(), ()).steps)
    assert snap.__dict__ == frozen


# -- an existing bridge --------------------------------------------------------------------------
def existing(options=None, ports=(), up=True, mac="02:00:00:00:00:99"):
    bridge = dict(ks.BRIDGE_DEFAULTS)
    bridge.update(options or {})
    links = [ks.Link(7, "breth0", kind="bridge", mac=mac, up=up, bridge=bridge)]
    links += [ks.Link(8 + i, name, kind="tun", master="breth0", up=True, mac="fe:00:00:00:00:%02x" % i) for i, name in enumerate(ports)]
    return host_snapshot(extra_links=links)


def test_stp_goes_off_before_the_delay_goes_to_zero():
    snap = existing({"stp": 1, "forward_delay": 1500})
    plan = bp.plan_bridge(snap, spec(ports=[], stp=False, forward_delay=0), ())
    assert [s.args.get("options") for s in plan.steps] == [{"stp": 0}, {"forward_delay": 0}]
    assert plan.actions[0] == "set breth0 stp false (was true)"
    assert plan.steps[1].undo == (("set_link", {"name": "breth0", "options": {"forward_delay": 1500}}),)


def test_stp_goes_on_after_the_delay_is_in_range():
    snap = existing({"stp": 0, "forward_delay": 0})
    plan = bp.plan_bridge(snap, spec(ports=[], stp=True, forward_delay=4), ())
    assert [s.args.get("options") for s in plan.steps] == [{"forward_delay": 400}, {"stp": 1}]


def test_zero_delay_on_a_bridge_running_stp_is_refused():
    snap = existing({"stp": 1})
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(snap, spec(ports=[], forward_delay=0), ())
    assert "does not work with STP on" in exc.value.msg


def test_matching_bridge_plans_nothing_and_timers_tolerate_rounding():
    snap = existing({"forward_delay": 1, "hello_time": 199}, ports=["vnet0"])
    plan = bp.plan_bridge(snap, spec(ports=["vnet0"], forward_delay=0, hello_time=2, mac="keep"), ())
    assert plan.actions == []


def test_mac_inherit_takes_the_first_port_that_is_not_a_tap():
    snap = existing(ports=["vnet0"])
    plan = bp.plan_bridge(snap, spec(ports=["vnet0", "eth1"]), ())
    assert plan.actions[0] == "set breth0 mac %s (was 02:00:00:00:00:99)" % ETH1_MAC
    assert plan.steps[0].undo == (("set_link", {"name": "breth0", "mac": "02:00:00:00:00:99"}),)


def test_mac_inherit_with_taps_only_warns_and_keeps():
    snap = existing(ports=["vnet0"])
    plan = bp.plan_bridge(snap, spec(ports=["vnet0"]), ())
    assert plan.actions == []
    assert "found no physical port" in plan.warnings[0]


def test_ports_exclusive_detaches_the_others_last():
    snap = existing(ports=["vnet0", "vnet1"])
    plan = bp.plan_bridge(snap, spec(ports=["vnet0", "eth1"], ports_exclusive=True, mac="keep"), ())
    assert plan.actions == ["attach eth1 to breth0", "bring port eth1 up", "detach vnet1 from breth0"]
    assert plan.steps[-1].args == {"name": "vnet1", "master": ""}
    assert plan.steps[-1].undo == (("set_link", {"name": "vnet1", "master": "breth0"}),)
    assert bp.plan_bridge(snap, spec(ports=["vnet0"], mac="keep"), ()).actions == []


def test_bring_down_last_and_up_first():
    snap = existing(up=False)
    plan = bp.plan_bridge(snap, spec(ports=["eth1"], mac="keep"), ())
    assert plan.actions[0] == "bring breth0 up"
    snap = existing(up=True)
    plan = bp.plan_bridge(snap, spec(ports=["eth1"], mac="keep", up=False), ())
    assert plan.actions == ["attach eth1 to breth0", "bring breth0 down"]


# -- rejected input: ModuleError before any step -----------------------------------------------
def _with(*links):
    return host_snapshot(extra_links=list(links))


REJECTED = {
    "missing port": (host_snapshot(), {"ports": ["eth9"]}, "Port eth9 does not exist"),
    "port of another bridge": (
        _with(ks.Link(9, "br1", kind="bridge"), ks.Link(10, "eth5", master="br1")),
        {"ports": ["eth5"]},
        "eth5 is already a port of br1 (a bridge)",
    ),
    "port of a bond": (
        _with(ks.Link(9, "bond0", kind="bond"), ks.Link(10, "eth5", master="bond0")),
        {"ports": ["eth5"]},
        "eth5 is already a port of bond0 (a bond)",
    ),
    "own port": (host_snapshot(), {"ports": ["breth0"]}, "breth0 cannot be a port of itself"),
    "bridge as port": (_with(ks.Link(9, "br1", kind="bridge")), {"ports": ["br1"]}, "br1 is itself a bridge"),
    "macvlan on the bridge": (
        _with(ks.Link(7, "breth0", kind="bridge"), ks.Link(9, "mv0", kind="macvlan", lower="breth0")),
        {"ports": ["mv0"]},
        "mv0 sits on top of breth0",
    ),
    "veth pair": (
        _with(ks.Link(9, "va", kind="veth", lower="vb"), ks.Link(10, "vb", kind="veth", lower="va")),
        {"ports": ["va", "vb"]},
        "va and vb are the two ends of one veth pair",
    ),
    "veth pair with a current port": (
        _with(ks.Link(7, "breth0", kind="bridge"), ks.Link(9, "va", kind="veth", lower="vb", master="breth0"), ks.Link(10, "vb", kind="veth", lower="va")),
        {"ports": ["vb"]},
        "two ends of one veth pair",
    ),
    "lo": (host_snapshot(), {"ports": ["lo"]}, "lo is the loopback interface"),
    "name exists as a NIC": (host_snapshot(), {"name": "eth1", "ports": []}, "eth1 exists and is a physical link, not a bridge"),
    "absent on a tap": (host_snapshot(), {"name": "vnet0", "state": "absent"}, "vnet0 exists and is a tap link"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_rejected_input(case):
    snap, params, message = REJECTED[case]
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(snap, spec(**params), ())
    assert message in exc.value.msg


def test_all_port_problems_at_once():
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(host_snapshot(), spec(ports=["eth8", "lo", "eth9"]), ())
    assert "eth8" in exc.value.msg and "loopback" in exc.value.msg and "eth9" in exc.value.msg


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"name": "br/0"}, "bridge name 'br/0' is not a valid interface name"),
        ({"name": "b" * 16}, "longer than 15 bytes"),
        ({"ports": ["eth 0"]}, "port name 'eth 0' is not a valid interface name"),
        ({"ports": ["eth0", "eth0"]}, "listed twice"),
        ({"mac": "01:00:5e:00:00:01"}, "multicast"),
        ({"mac": "nonsense"}, "mac 'nonsense' is not a MAC address"),
        ({"mtu": 20}, "mtu 20 is out of range"),
        ({"hello_time": 20}, "hello_time 20 is out of range"),
        ({"stp": True, "forward_delay": 0}, "does not work with STP on"),
    ],
)
def test_rejected_params(params, message):
    with pytest.raises(ModuleError) as exc:
        spec(**params)
    assert message in exc.value.msg


def test_several_param_problems_are_reported_together():
    with pytest.raises(ModuleError) as exc:
        spec(name="br/0", mac="nonsense", mtu=1)
    assert "br/0" in exc.value.msg and "nonsense" in exc.value.msg and "mtu" in exc.value.msg


# -- the connection ------------------------------------------------------------------------------------
def migrated():
    snap = host_snapshot()
    wanted = spec()
    return bp.simulate(snap, bp.plan_bridge(snap, wanted, ()).steps)


def test_absent_refuses_the_bridge_carrying_the_connection():
    snap = migrated()
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(snap, spec(state="absent"), ["198.18.0.3"])
    assert "Refusing to remove bridge breth0: it carries 198.18.0.3" in exc.value.msg and "force: true" in exc.value.msg
    forced = bp.plan_bridge(snap, spec(state="absent", force=True), ["198.18.0.3"])
    assert forced.actions == ["delete bridge breth0 (releases eth0)"]
    assert bp.plan_bridge(snap, spec(state="absent"), ["198.18.7.7"]).actions == ["delete bridge breth0 (releases eth0)"]


def test_absent_of_a_missing_bridge_plans_nothing():
    assert bp.plan_bridge(host_snapshot(), spec(state="absent"), ["198.18.0.2"]).actions == []


def test_attaching_the_connection_nic_without_migration_is_refused():
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(host_snapshot(), spec(migrate_addresses=False), ["::ffff:198.18.0.2"])
    assert "Refusing to make eth0 a port of breth0: it carries 198.18.0.2" in exc.value.msg
    assert bp.plan_bridge(host_snapshot(), spec(migrate_addresses=False, force=True), ["198.18.0.2"]).changed


def test_a_link_local_connection_does_not_move_so_it_is_refused():
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(host_snapshot(), spec(), ["fe80::5054:ff:fe00:1"])
    assert "Refusing to make eth0 a port" in exc.value.msg


def test_detaching_the_uplink_of_the_connection_bridge_is_refused():
    snap = migrated()
    snap.links["vnet0"].master = "breth0"
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(snap, spec(ports=["vnet0"], ports_exclusive=True), ["198.18.0.2"])
    assert "Refusing to detach eth0 from breth0" in exc.value.msg
    assert bp.plan_bridge(snap, spec(ports=["eth0"], ports_exclusive=True), ["198.18.0.2"]).actions == ["detach vnet0 from breth0"]
    forced = bp.plan_bridge(snap, spec(ports=["vnet0"], ports_exclusive=True, force=True), ["198.18.0.2"])
    assert forced.actions == ["detach eth0 from breth0"]


def test_bringing_the_connection_bridge_down_is_refused():
    with pytest.raises(ModuleError) as exc:
        bp.plan_bridge(migrated(), spec(up=False), ["198.18.0.2"])
    assert "Refusing to leave breth0 down" in exc.value.msg
    # also when breth0 does not exist yet: the migration would move the connection onto a bridge left down
    with pytest.raises(ModuleError, match=r"^Refusing to leave breth0 down: it carries 198\.18\.0\.2, the address this Ansible connection uses"):
        bp.plan_bridge(host_snapshot(), spec(up=False), ["198.18.0.2"])


# -- views --------------------------------------------------------------------------------------------------
def test_views_before_and_after():
    snap = host_snapshot()
    assert bp.bridge_view(snap, "breth0", ("eth0",)) == {"name": "breth0", "state": "absent"}
    after = bp.simulate(snap, bp.plan_bridge(snap, spec(forward_delay=0), ()).steps)
    view = bp.bridge_view(after, "breth0", ("eth0",))
    assert view["ports"] == ["eth0"] and view["mac"] == ETH0_MAC and view["up"] is True
    assert view["forward_delay"] == 0 and view["hello_time"] == 2 and view["stp"] is False
    assert view["addresses"] == ["198.18.0.2/24", "198.18.0.3/24", "2001:db8::2/64"]
    assert "default via 198.18.0.1 dev breth0 proto boot" in view["routes"]
    assert view["port_addresses"] == {"eth0": []}
    assert view["port_routes"] == {"eth0": []}


def test_state_differences():
    snap = host_snapshot()
    after = bp.simulate(snap, bp.plan_bridge(snap, spec(), ()).steps)
    names = {"breth0", "eth0"}
    diffs = ks.state_differences(ks.runtime_state(snap, names), ks.runtime_state(after, names))
    assert "breth0 exists but did not before" in diffs
    assert any(d.startswith("eth0 master: was None, now breth0") for d in diffs)
    assert ks.state_differences(ks.runtime_state(snap, names), ks.runtime_state(snap, names)) == []


# -- applying ----------------------------------------------------------------------------------------------
class SimApplier:
    """Applies ops to a Snapshot the way simulate() does; can fail an op like the kernel would.

    ``peaks`` keeps a copy of the state after each forward op, for checking against hand-written states.
    """

    def __init__(self, snap, fail=None):
        self.snap = snap
        self.fail = fail or (lambda op, args, undoing: None)
        self.log = []
        self.peaks = []

    def run(self, op, args, undoing=False):
        error = self.fail(op, args, undoing)
        if error is not None:
            raise error
        self.log.append((op, undoing))
        bp._simulate_op(self.snap, op, args, set())
        if not undoing:
            self.peaks.append(self.snap.copy())


def _plan():
    snap = host_snapshot()
    return snap, bp.plan_bridge(snap, spec(forward_delay=0), ["198.18.0.2"])


NUMBER_OF_STEPS = len(_plan()[1].steps)


def observed(snap):
    """What the migration changes, read straight off the records: breth0 (up, MAC), eth0's master,
    the addresses on breth0 and on eth0, the routes through breth0."""
    bridge = snap.links.get("breth0")
    v = {AF_INET: "v4", AF_INET6: "v6"}
    return {
        "breth0": None if bridge is None else (bridge.up, bridge.mac),
        "eth0 master": snap.links["eth0"].master,
        "on breth0": sorted("%s/%d %s" % (a.ip, a.prefixlen, a.label) for a in snap.addresses if a.dev == "breth0"),
        "on eth0": sorted("%s/%d %s" % (a.ip, a.prefixlen, a.label) for a in snap.addresses if a.dev == "eth0"),
        "via breth0": sorted("%s %s/%d table %d" % (v[r.family], r.dst, r.dst_len, r.table) for r in snap.routes if r.dev == "breth0"),
    }


# The state after each step of the migration (forward_delay 0), written out by hand from what the step does.
# Adding an address also gives its prefix route (proto kernel), once per prefix, as the kernel does.
V4, V4_SECONDARY, V6, LINK_LOCAL = "198.18.0.2/24 %s", "198.18.0.3/24 %s", "2001:db8::2/64 None", "fe80::5054:ff:fe00:1/64 None"
ON_ETH0 = sorted([V4 % "eth0", V4_SECONDARY % "eth0:1", V6, LINK_LOCAL])
ON_BRETH0 = sorted([V4 % "None", V4_SECONDARY % "breth0:1", V6])
PREFIX_V4, PREFIX_V6 = "v4 198.18.0.0/24 table 254", "v6 2001:db8::/64 table 254"
DEFAULT_V4, TABLE_100, DEFAULT_V6 = "v4 None/0 table 254", "v4 198.18.99.0/24 table 100", "v6 None/0 table 254"
PREFIXES = [PREFIX_V4, PREFIX_V6]
ALL_ROUTES = sorted([*PREFIXES, DEFAULT_V4, TABLE_100, DEFAULT_V6])
UP = (True, ETH0_MAC)
AFTER_STEP = {
    1: {"breth0": (False, ETH0_MAC), "eth0 master": None, "on breth0": [], "on eth0": ON_ETH0, "via breth0": []},
    2: {"breth0": UP, "eth0 master": None, "on breth0": [], "on eth0": ON_ETH0, "via breth0": []},
    3: {"breth0": UP, "eth0 master": None, "on breth0": [V4 % "None"], "on eth0": ON_ETH0, "via breth0": [PREFIX_V4]},
    4: {"breth0": UP, "eth0 master": None, "on breth0": sorted([V4 % "None", V4_SECONDARY % "breth0:1"]), "on eth0": ON_ETH0, "via breth0": [PREFIX_V4]},
    5: {"breth0": UP, "eth0 master": None, "on breth0": ON_BRETH0, "on eth0": ON_ETH0, "via breth0": PREFIXES},
    6: {"breth0": UP, "eth0 master": "breth0", "on breth0": ON_BRETH0, "on eth0": ON_ETH0, "via breth0": PREFIXES},
    7: {"breth0": UP, "eth0 master": "breth0", "on breth0": ON_BRETH0, "on eth0": ON_ETH0, "via breth0": sorted([*PREFIXES, DEFAULT_V4])},
    8: {"breth0": UP, "eth0 master": "breth0", "on breth0": ON_BRETH0, "on eth0": ON_ETH0, "via breth0": sorted([*PREFIXES, DEFAULT_V4, TABLE_100])},
    9: {"breth0": UP, "eth0 master": "breth0", "on breth0": ON_BRETH0, "on eth0": ON_ETH0, "via breth0": ALL_ROUTES},
    10: {
        "breth0": UP,
        "eth0 master": "breth0",
        "on breth0": ON_BRETH0,
        "on eth0": sorted([V4 % "eth0", V4_SECONDARY % "eth0:1", LINK_LOCAL]),
        "via breth0": ALL_ROUTES,
    },
    11: {"breth0": UP, "eth0 master": "breth0", "on breth0": ON_BRETH0, "on eth0": sorted([V4 % "eth0", LINK_LOCAL]), "via breth0": ALL_ROUTES},
    12: {"breth0": UP, "eth0 master": "breth0", "on breth0": ON_BRETH0, "on eth0": [LINK_LOCAL], "via breth0": ALL_ROUTES},
}


def records(snap):
    """Every record of a snapshot, every attribute included (labels, flags, lifetimes, metrics, protocol)."""
    return (snap.links, sorted(snap.addresses, key=repr), sorted(snap.routes, key=repr))


def test_the_hand_written_states_cover_every_step():
    assert sorted(AFTER_STEP) == list(range(1, NUMBER_OF_STEPS + 1))


@pytest.mark.parametrize("step", range(1, NUMBER_OF_STEPS + 1))
def test_injected_failure_after_any_step_restores_everything(step):
    snap, plan = _plan()
    applier = SimApplier(snap.copy())
    with pytest.raises(ka.ApplyError) as exc:
        ka.apply_plan(applier, plan, fail_after_step=step)
    assert isinstance(exc.value.cause, ka.InjectedFailure)
    assert exc.value.step_number == step and len(exc.value.done) == step and exc.value.restore_errors == []
    assert [undoing for _op, undoing in applier.log] == [False] * step + [True] * step
    # The steps did what they say, up to the failure ...
    assert [observed(peak) for peak in applier.peaks] == [AFTER_STEP[k] for k in range(1, step + 1)]
    # ... and the restore brought back the hand-built host, record for record.
    assert records(applier.snap) == records(host_snapshot())


def test_a_failing_step_is_not_undone_but_the_ones_before_are():
    snap, plan = _plan()
    attach = position(plan, "attach eth0")

    def fail(op, args, undoing):
        if op == "set_link" and args.get("master") == "breth0":
            return NetlinkError(errno.EBUSY, "Device or resource busy")
        return None

    applier = SimApplier(snap.copy(), fail)
    with pytest.raises(ka.ApplyError) as exc:
        ka.apply_plan(applier, plan)
    assert exc.value.step_number == attach + 1
    assert exc.value.done == plan.actions[:attach]
    assert len(applier.log) == 2 * attach
    assert ks.runtime_state(applier.snap, {"breth0", "eth0"}) == ks.runtime_state(snap, {"breth0", "eth0"})


def test_undo_errors_are_collected_and_undo_goes_on():
    snap, plan = _plan()

    def fail(op, args, undoing):
        if undoing and op == "del_address":
            return NetlinkError(errno.EPERM, "Operation not permitted")
        return None

    applier = SimApplier(snap.copy(), fail)
    with pytest.raises(ka.ApplyError) as exc:
        ka.apply_plan(applier, plan, fail_after_step=5)
    assert len(exc.value.restore_errors) == 3
    assert "undo of 'add 2001:db8::2/64 to breth0 (from eth0)' failed" in exc.value.restore_errors[0]
    assert ("delete_link", True) in applier.log  # the rest was still undone


class FakeIPR:
    """Records the requests KernelApplier sends; link indexes by name."""

    def __init__(self, indexes, errors=None):
        self.indexes = dict(indexes)
        self.calls = []
        self.errors = errors or {}

    def link_lookup(self, ifname):
        return [self.indexes[ifname]] if ifname in self.indexes else []

    def _call(self, kind, command, kwargs):
        self.calls.append((kind, command, kwargs))
        error = self.errors.get((kind, command))
        if error is not None:
            raise error
        if (kind, command) == ("link", "add"):
            self.indexes[kwargs["ifname"]] = max(self.indexes.values()) + 1
        return []

    def link(self, command, **kwargs):
        return self._call("link", command, kwargs)

    def addr(self, command, **kwargs):
        return self._call("addr", command, kwargs)

    def route(self, command, **kwargs):
        return self._call("route", command, kwargs)


def test_kernel_requests_of_a_migration():
    _snap, plan = _plan()
    ipr = FakeIPR({"lo": 1, "eth0": 2, "eth1": 3})
    assert ka.apply_plan(ka.KernelApplier(ipr), plan) == plan.actions
    calls = ipr.calls
    assert calls[0] == (
        "link",
        "add",
        {
            "ifname": "breth0",
            "address": ETH0_MAC,
            "IFLA_LINKINFO": {"attrs": [["IFLA_INFO_KIND", "bridge"], ["IFLA_INFO_DATA", {"attrs": [["IFLA_BR_FORWARD_DELAY", 0]]}]]},
        },
    )
    assert calls[1] == ("link", "set", {"index": 4, "flags": ks.IFF_UP, "change": ks.IFF_UP})
    assert calls[2] == (
        "addr",
        "add",
        {"index": 4, "family": AF_INET, "prefixlen": 24, "address": "198.18.0.2", "local": "198.18.0.2", "broadcast": "198.18.0.255"},
    )
    assert calls[4][2]["IFA_FLAGS"] == ks.IFA_F_NODAD
    assert calls[5] == ("link", "set", {"index": 2, "master": 4})
    replace_default = calls[6]
    assert replace_default == (
        "route",
        "replace",
        {"family": AF_INET, "table": 254, "dst_len": 0, "tos": 0, "proto": 3, "scope": 0, "type": 1, "oif": 4, "gateway": "198.18.0.1"},
    )
    # After each replace, the old route is deleted if the kernel kept it (here it did not: no error raised means it did).
    assert calls[7][0:2] == ("route", "del") and calls[7][2]["oif"] == 2
    policy = calls[8][2]
    assert (policy["dst"], policy["table"], policy["priority"], policy["metrics"], policy["oif"]) == ("198.18.99.0/24", 100, 5, {"RTAX_MTU": 1400}, 4)
    assert calls[-1] == ("addr", "del", {"index": 2, "family": AF_INET, "prefixlen": 24, "address": "198.18.0.2", "local": "198.18.0.2"})


def test_route_delete_after_replace_tolerates_no_such_route():
    ipr = FakeIPR({"eth0": 2, "breth0": 4}, errors={("route", "del"): NetlinkError(errno.ESRCH, "No such process")})
    old = ks.Route(AF_INET, proto=3, dev="eth0", gateway="198.18.0.1")
    ka.KernelApplier(ipr).run("replace_route", {"route": old.on("eth0", "breth0"), "old": old})
    assert [c[1] for c in ipr.calls] == ["replace", "del"]


def test_undo_tolerates_what_did_not_happen():
    ipr = FakeIPR({"eth0": 2}, errors={("addr", "add"): NetlinkError(errno.EEXIST, "File exists")})
    address = ks.Address("eth0", AF_INET, "198.18.0.2", 24, local="198.18.0.2")
    ka.KernelApplier(ipr).run("add_address", {"address": address}, undoing=True)
    with pytest.raises(NetlinkError):
        ka.KernelApplier(ipr).run("add_address", {"address": address})


def test_dynamic_address_keeps_its_remaining_lifetime():
    ipr = FakeIPR({"breth0": 4})
    address = ks.Address("breth0", AF_INET6, "2001:db8::7", 64, flags=ks.IFA_F_NODAD, valid=600, preferred=900, proto=4)
    ka.KernelApplier(ipr).run("add_address", {"address": address})
    request = ipr.calls[0][2]
    assert request["IFA_CACHEINFO"] == {"ifa_valid": 600, "ifa_preferred": 600, "valid": 600, "preferred": 600, "cstamp": 0, "tstamp": 0}
    assert request["IFA_PROTO"] == 4 and request["IFA_FLAGS"] == ks.IFA_F_NODAD


def test_release_port_and_multipath_request():
    ipr = FakeIPR({"eth0": 2, "eth9": 9, "breth0": 4})
    applier = ka.KernelApplier(ipr)
    applier.run("set_link", {"name": "eth0", "master": ""})
    assert ipr.calls[-1] == ("link", "set", {"index": 2, "master": 0})
    route = ks.Route(AF_INET, dst="198.18.77.0", dst_len=24, proto=4, multipath=(ks.Nexthop("breth0", "198.18.0.1"), ks.Nexthop("eth9", None, 1, 4)))
    applier.run("replace_route", {"route": route})
    assert ipr.calls[-1][2]["multipath"] == [{"oif": 4, "hops": 0, "flags": 0, "gateway": "198.18.0.1"}, {"oif": 9, "hops": 1, "flags": 4}]
    with pytest.raises(ModuleError, match=r"^gone0 does not exist \(any more\)\.$"):
        applier.run("set_link", {"name": "gone0", "up": True})


# -- the module's flow ---------------------------------------------------------------------------------------
@pytest.fixture
def fake_kernel(monkeypatch):
    """manage_bridge() over a simulated kernel: reads return its snapshot, the applier changes it."""
    state = {"snap": host_snapshot(), "fail": None}

    class Session:
        def __enter__(self):
            return object()

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(br, "read_snapshot", lambda source=None: state["snap"].copy())
    monkeypatch.setattr(ka, "KernelApplier", lambda ipr, module=None: SimApplier(state["snap"], state["fail"]))
    monkeypatch.setattr(br._dhcp_client, "find_clients", lambda interfaces: [])  # no DHCP client runs on the fake ports
    state["session"] = Session
    return state


def params(**overrides):
    base = {
        "name": "breth0",
        "state": "present",
        "ports": ["eth0"],
        "ports_exclusive": False,
        "mac": "inherit",
        "migrate_addresses": True,
        "up": True,
        "force": False,
        "mtu": None,
    }
    base.update(dict.fromkeys(ks.BRIDGE_OPTION_NAMES))
    base.update(overrides)
    return base


def test_manage_bridge_check_mode_changes_nothing(fake_kernel):
    before = copy.deepcopy(fake_kernel["snap"].__dict__)
    result = br.manage_bridge(params(), check_mode=True, session=fake_kernel["session"])
    assert result["changed"] is True and len(result["actions"]) == NUMBER_OF_STEPS
    assert result["diff"]["before"] == {"name": "breth0", "state": "absent"}
    assert result["diff"]["after"]["ports"] == ["eth0"]
    assert fake_kernel["snap"].__dict__ == before


def test_manage_bridge_applies_then_is_idempotent(fake_kernel):
    result = br.manage_bridge(params(), session=fake_kernel["session"])
    assert result["changed"] is True
    assert result["bridge"]["addresses"] == ["198.18.0.2/24", "198.18.0.3/24", "2001:db8::2/64"]
    again = br.manage_bridge(params(), session=fake_kernel["session"])
    assert again["changed"] is False and again["actions"] == []


def test_manage_bridge_failure_reports_the_restore(fake_kernel):
    with pytest.raises(ModuleError) as exc:
        br.manage_bridge(params(), fail_after_step=6, session=fake_kernel["session"])
    error = exc.value
    assert error.msg.startswith("Step 6 of %d failed (attach eth0 to breth0): failure injected after step 6" % NUMBER_OF_STEPS)
    assert "previous runtime state was restored (6 applied step(s) undone); nothing is changed" in error.msg
    assert error.result["restored"] is True and error.result["changed"] is False and error.result["failed_step"] == 6
    assert fake_kernel["snap"].link("breth0") is None


def test_manage_bridge_reads_the_testing_aid_from_environ(fake_kernel):
    with pytest.raises(ModuleError) as exc:
        br.manage_bridge(params(), session=fake_kernel["session"], environ={ka.TEST_FAIL_ENV: "6"})
    assert exc.value.result["failed_step"] == 6 and exc.value.result["restored"] is True
    with pytest.raises(ModuleError, match="is not a positive step number"):
        br.manage_bridge(params(), session=fake_kernel["session"], environ={ka.TEST_FAIL_ENV: "x"})
    assert fake_kernel["snap"].link("breth0") is None


def test_manage_bridge_failure_with_leftovers_says_so(fake_kernel):
    fake_kernel["fail"] = lambda op, args, undoing: NetlinkError(errno.EPERM, "no") if undoing and op == "delete_link" else None
    with pytest.raises(ModuleError) as exc:
        br.manage_bridge(params(), fail_after_step=2, session=fake_kernel["session"])
    error = exc.value
    assert error.result["restored"] is False and error.result["changed"] is True
    assert "did not fully succeed" in error.msg and "breth0 exists but did not before" in error.msg
    assert "Operation not permitted (errno 1, EPERM)" in error.msg

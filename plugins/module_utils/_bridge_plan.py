# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning a bridge, pure (no kernel, no root), and simulating the plan.

BridgeSpec.from_params() checks the module's parameters; plan_bridge() turns a
Snapshot and a BridgeSpec into a Plan, an ordered list of Steps, each with a
description and the steps that undo it; simulate() applies a plan to a
Snapshot in memory (check mode's "after", and the idempotence tests);
bridge_view() is what the diff and the result show.

Moving a NIC into a bridge without losing the SSH session that runs over it
(the order of plan_bridge):

1. create the bridge down, with the NIC's MAC (mac: inherit) and its options;
2. bring the bridge up;
3. add the NIC's addresses to the bridge, same prefix (IPv6 with nodad: the
   address is already ours on this link);
4. enslave the NIC (from now on frames arrive through the bridge, and the
   bridge answers ARP with the same MAC, so peers' ARP entries stay valid);
5. move the NIC's routes (default route too) to the bridge, one atomic
   RTM_NEWROUTE replace per route, keeping gateway, metric, scope, protocol,
   table, preferred source and metrics;
6. remove the addresses from the NIC, secondaries first. Only now, because
   removing the last IPv4 address of a device flushes every route through it.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from socket import AF_INET6
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils import _dhcp_client
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._kernel_snapshot import (
    BRIDGE_DEFAULTS,
    BRIDGE_OPTION_NAMES,
    IFA_F_NODAD,
    IFA_SETTABLE_FLAGS,
    OPTION_HOW,
    RTNH_F_ONLINK,
    USER_HZ,
    Address,
    Link,
    Nexthop,
    Route,
    Snapshot,
    is_guest_port,
    is_link_local,
    is_migratable_address,
    is_movable_route,
    kernel_prefix_route,
    link_class,
    normalize_ip,
    option_from_kernel,
    option_matches,
    option_to_kernel,
    prefix_route_of,
    stacked_on,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import IFNAMSIZ, normalize_mac, validate_ifname

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Set
    from typing import Optional, TypeVar

    from ansible_collections.kvmhost.bridging.plugins.module_utils._dhcp_client import DhcpClient

    T = TypeVar("T")
    # (op, args) of one undo operation.
    UndoOp = tuple[str, dict[str, Any]]
    # (address on the port, the same address on the bridge or None when the bridge has it already).
    AddressMove = tuple[Address, Optional[Address]]
    # (client on the port, its argv on the bridge, the lease file's (source, destination) or None).
    ClientMove = tuple[DhcpClient, tuple[str, ...], Optional[tuple[Optional[str], Optional[str]]]]

# Bridge limits
# forward delay only while STP runs (and STP clamps it into range when it starts).
TIMER_RANGES = {"hello_time": (1, 10), "max_age": (6, 40), "forward_delay": (2, 30)}
AGEING_TIME_MAX = 1000000
# IFLA_BR_FORWARD_DELAY is a u32 of centiseconds: the longest delay without STP.
FORWARD_DELAY_MAX = (2**32 - 1) // 100
MTU_MIN = 68
MTU_MAX = 65535


# --------------------------------------------------------------------------
# Desired state
# --------------------------------------------------------------------------
@dataclass
class BridgeSpec:
    """What the task asks for. ``options`` holds only the options the task sets, in user units."""

    name: str
    state: str = "present"
    ports: tuple[str, ...] = ()
    ports_exclusive: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    mtu: int | None = None
    mac: str = "inherit"  # inherit | keep | a normalized MAC
    migrate_addresses: bool = True
    up: bool = True
    force: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> BridgeSpec:
        """Validate module parameters into a BridgeSpec; raise ModuleError naming every problem."""
        problems: list[str] = []

        def check(func: Callable[..., T], *args: Any) -> T | None:
            try:
                return func(*args)
            except ModuleError as exc:
                problems.append(exc.msg)
                return None

        name = check(validate_ifname, params.get("name"), "bridge name")
        ports: list[str] = []
        for port in params.get("ports") or []:
            if check(validate_ifname, port, "port name") is None:
                continue
            if port in ports:
                problems.append("Port %r is listed twice in ports." % port)
                continue
            ports.append(port)
        mac = params.get("mac") or "inherit"
        if mac not in ("inherit", "keep"):
            mac = check(normalize_mac, mac, "mac") or mac
        options: dict[str, Any] = {}
        for option in BRIDGE_OPTION_NAMES:
            value = params.get(option)
            if value is not None:
                options[option] = value
        problems.extend(option_problems(options))
        mtu = params.get("mtu")
        if mtu is not None and not MTU_MIN <= mtu <= MTU_MAX:
            problems.append("mtu %s is out of range: use %d-%d." % (mtu, MTU_MIN, MTU_MAX))
        if problems:
            raise ModuleError(" ".join(problems))
        return cls(
            name=cast(str, name),  # check() gives None only with a problem, and problems raised above
            state=params.get("state") or "present",
            ports=tuple(ports),
            ports_exclusive=bool(params.get("ports_exclusive")),
            options=options,
            mtu=mtu,
            mac=mac,
            migrate_addresses=params.get("migrate_addresses", True) is not False,
            up=params.get("up", True) is not False,
            force=bool(params.get("force")),
        )


def option_problems(options: dict[str, Any], stp: bool | None = None) -> list[str]:
    """Range problems of bridge options in user units; ``stp`` is the STP state when the options do not set it."""
    problems: list[str] = []
    options = dict(options)
    for name in ("forward_delay", "hello_time", "max_age", "ageing_time"):
        value = options.get(name)
        if value is not None and not math.isfinite(value):
            problems.append("%s %s is not a number of seconds; give a finite value." % (name, value))
            del options[name]
    for name in ("hello_time", "max_age"):
        value = options.get(name)
        low, high = TIMER_RANGES[name]
        if value is not None and not low <= value <= high:
            problems.append("%s %s is out of range: the kernel accepts %d-%d seconds." % (name, value, low, high))
    for name in ("forward_delay", "ageing_time"):
        value = options.get(name)
        if value is not None and value < 0:
            problems.append("%s must not be negative." % name)
    if options.get("forward_delay") is not None and options["forward_delay"] > FORWARD_DELAY_MAX:
        problems.append("forward_delay must be at most %d seconds." % FORWARD_DELAY_MAX)
    if options.get("ageing_time") is not None and options["ageing_time"] > AGEING_TIME_MAX:
        problems.append("ageing_time must be at most %d seconds." % AGEING_TIME_MAX)
    priority = options.get("priority")
    if priority is not None and not 0 <= priority <= 65535:
        problems.append("priority %s is out of range: use 0-65535." % priority)
    stp_on = options.get("stp", stp)
    delay = options.get("forward_delay")
    low, high = TIMER_RANGES["forward_delay"]
    if stp_on and delay is not None and not low <= delay <= high:
        problems.append(
            "forward_delay %s does not work with STP on: the kernel accepts %d-%d seconds while STP runs"
            " (and raises a smaller delay to %d when STP starts). Set stp: false for a shorter delay." % (delay, low, high, low)
        )
    return problems


# --------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------
@dataclass
class Step:
    """One kernel change. ``undo`` lists (op, args) pairs that take it back, run in order."""

    op: str
    description: str
    args: dict[str, Any]
    undo: tuple[UndoOp, ...] = ()


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    @property
    def actions(self) -> list[str]:
        return [step.description for step in self.steps]

    def add(self, op: str, description: str, args: dict[str, Any], undo: Iterable[UndoOp] = ()) -> None:
        self.steps.append(Step(op, description, args, tuple(undo)))


def _set_link(name: str, **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"name": name}
    args.update(changes)
    return args


def plan_bridge(snapshot: Snapshot, spec: BridgeSpec, connection_addresses: Iterable[str] = (), clients: Iterable[DhcpClient] = ()) -> Plan:
    """Plan the steps from ``snapshot`` to ``spec``; pure. Raise ModuleError (nothing changed) on bad input.

    ``connection_addresses`` are the host's own addresses the controller is
    connected to (from SSH_CONNECTION): a step that would cut them off needs
    ``force``. ``clients``: the DHCP clients (_dhcp_client.DhcpClient) bound
    to the ports, which move to the bridge with the addresses.
    """
    connection = {ip for ip in (normalize_ip(a) for a in connection_addresses) if ip is not None}
    bridge = snapshot.link(spec.name)
    if bridge is not None and bridge.kind != "bridge":
        raise ModuleError("%s exists and is a %s link, not a bridge; choose another name or remove it first." % (spec.name, link_class(bridge)))
    if spec.state == "absent":
        return _plan_absent(snapshot, spec, bridge, connection)
    return _plan_present(snapshot, spec, bridge, connection, clients)


def _connection_on(snapshot: Snapshot, name: str, connection: Set[str]) -> list[str]:
    return sorted(a.ip for a in snapshot.addresses_on(name) if normalize_ip(a.ip) in connection)


def _plan_absent(snapshot: Snapshot, spec: BridgeSpec, bridge: Link | None, connection: Set[str]) -> Plan:
    plan = Plan()
    if bridge is None:
        return plan
    carried = _connection_on(snapshot, spec.name, connection)
    if carried and not spec.force:
        raise ModuleError(
            "Refusing to remove bridge %s: it carries %s, the address this Ansible connection uses, and removing it would"
            " cut the connection. Move the address off the bridge first, or set force: true." % (spec.name, ", ".join(carried))
        )
    ports = snapshot.ports_of(spec.name)
    description = "delete bridge %s" % spec.name
    if ports:
        description += " (releases %s)" % ", ".join(ports)
    plan.add("delete_link", description, {"name": spec.name})
    return plan


def _check_ports(snapshot: Snapshot, spec: BridgeSpec, bridge: Link | None) -> list[Link]:
    """The links of the listed ports; raise ModuleError for any port that cannot join the bridge."""
    problems: list[str] = []
    links: list[Link] = []
    for name in spec.ports:
        link = snapshot.link(name)
        if name == spec.name:
            problems.append("%s cannot be a port of itself." % name)
        elif link is None:
            problems.append("Port %s does not exist. Check the name (ip link shows the interfaces); a guest's tap exists only while its VM runs." % name)
        elif link_class(link) == "loopback":
            problems.append("%s is the loopback interface and cannot be a bridge port." % name)
        elif link.kind == "bridge":
            problems.append(
                "%s is itself a bridge; a bridge cannot be a port of another bridge (it would make a bridge loop)."
                " Connect bridges with a veth pair if you need to." % name
            )
        elif stacked_on(snapshot, link, spec.name):
            problems.append("%s sits on top of %s (a %s); making it a port of %s would make a bridge loop." % (name, spec.name, link.kind, spec.name))
        elif link.master and link.master != spec.name:
            master = snapshot.link(link.master)
            what = link_class(master) if master else "device"
            problems.append("%s is already a port of %s (a %s); detach it from %s first." % (name, link.master, what, link.master))
        else:
            links.append(link)
    if problems:
        raise ModuleError(" ".join(problems))
    # Both ends of a veth pair in one bridge loop every broadcast back to it.
    final = set(spec.ports)
    if not spec.ports_exclusive and bridge is not None:
        final.update(snapshot.ports_of(spec.name))
    for name in sorted(final):
        link = snapshot.link(name)
        if link is not None and link.kind == "veth" and link.lower in final and name < link.lower:
            problems.append("%s and %s are the two ends of one veth pair; both as ports of %s would make a bridge loop." % (name, link.lower, spec.name))
    if problems:
        raise ModuleError(" ".join(problems))
    return links


def _relabel(label: str | None, port: str, bridge: str) -> str | None:
    """The IPv4 label of a moved address: eth0 -> breth0, eth0:1 -> breth0:1 (dropped when too long)."""
    if not label or label == port:
        return None
    if label.startswith(port + ":"):
        new = bridge + label[len(port) :]
        return new if len(new.encode("utf-8")) < IFNAMSIZ else None
    return label


def _plan_present(snapshot: Snapshot, spec: BridgeSpec, bridge: Link | None, connection: Set[str], clients: Iterable[DhcpClient] = ()) -> Plan:
    plan = Plan()
    port_links = _check_ports(snapshot, spec, bridge)
    current_ports = snapshot.ports_of(spec.name) if bridge is not None else []
    to_attach = [link for link in port_links if link.master != spec.name]
    mac = _bridge_mac(plan, spec, port_links)
    current_options, wanted = _bridge_options(spec, bridge)
    moves_addr: list[AddressMove] = []
    moves_route: list[tuple[Route, Route]] = []
    if spec.migrate_addresses:
        moves_addr = _address_moves(snapshot, spec, port_links)
        moves_route = _route_moves(snapshot, spec, port_links)
    client_moves, moves_addr = _client_moves(plan, spec, port_links, clients, moves_addr)
    if not spec.force:
        _keep_connection(snapshot, spec, bridge, connection, to_attach, current_ports, moves_addr)
    # -- 0. the DHCP clients stop on the ports first (a rollback starts them last) --
    for client, _argv, _lease in client_moves:
        plan.add(
            "stop_dhcp_client",
            "stop %s on %s (pid %d)" % (client.name, client.interface, client.pid),
            {"argv": client.argv},
            undo=[("start_dhcp_client", {"argv": client.argv})],
        )
    _plan_bridge_link(plan, spec, bridge, mac, wanted, current_options)
    _plan_onto_bridge(plan, spec, bridge, port_links, to_attach, moves_addr)
    _plan_off_ports(plan, spec, bridge, current_ports, moves_addr, moves_route, client_moves)
    return plan


def _bridge_mac(plan: Plan, spec: BridgeSpec, port_links: list[Link]) -> str | None:
    """The MAC the bridge gets (None: its own), warning when ``inherit`` finds no physical port."""
    if spec.mac == "inherit":
        uplinks = [link for link in port_links if not is_guest_port(link)]
        if uplinks:
            return uplinks[0].mac
        if port_links:
            plan.warnings.append("mac: inherit found no physical port among %s; %s keeps its own MAC." % (", ".join(spec.ports), spec.name))
        return None
    return None if spec.mac == "keep" else spec.mac


def _bridge_options(spec: BridgeSpec, bridge: Link | None) -> tuple[dict[str, int], dict[str, int]]:
    """(the bridge's options now, the wanted ones), in netlink units; raise ModuleError for options out of range."""
    current_options = dict(BRIDGE_DEFAULTS)
    if bridge is not None:
        current_options.update(bridge.bridge)
    problems = option_problems(spec.options, stp=bool(current_options.get("stp")))
    if problems:
        raise ModuleError(" ".join(problems))
    return current_options, {opt: option_to_kernel(opt, value) for opt, value in spec.options.items()}


def _address_moves(snapshot: Snapshot, spec: BridgeSpec, port_links: list[Link]) -> list[AddressMove]:
    """(port Address, bridge Address or None when the bridge has it already) for each address that moves."""
    name = spec.name
    moves_addr: list[AddressMove] = []
    on_bridge = {a.key: a for a in snapshot.addresses_on(name)}
    for link in port_links:
        for address in snapshot.addresses_on(link.name):
            if not is_migratable_address(address):
                continue
            existing = on_bridge.get(address.key)
            if existing is not None and existing.prefixlen != address.prefixlen:
                raise ModuleError(
                    "%s is on %s as /%d and on %s as /%d; remove one of them first." % (address.ip, link.name, address.prefixlen, name, existing.prefixlen)
                )
            new = None
            if existing is None:
                flags = address.flags & IFA_SETTABLE_FLAGS
                if address.family == AF_INET6:
                    flags |= IFA_F_NODAD  # already ours on this link: no duplicate detection needed
                new = replace(address, dev=name, flags=flags, label=_relabel(address.label, link.name, name))
                on_bridge[address.key] = new
            moves_addr.append((address, new))
    return moves_addr


def _route_moves(snapshot: Snapshot, spec: BridgeSpec, port_links: list[Link]) -> list[tuple[Route, Route]]:
    """(old Route, new Route) for each route of the ports that moves, in an order the kernel accepts."""
    port_names = [link.name for link in port_links]
    moves_route: list[tuple[Route, Route]] = []
    seen: set[Route] = set()
    for route in snapshot.routes:
        if not any(route.uses(port) for port in port_names) or not is_movable_route(route, snapshot.addresses):
            continue
        if route in seen:
            continue
        seen.add(route)
        if route.unsupported:
            raise ModuleError(
                "Cannot move route '%s': it has %s, which this module does not copy. Move that route to %s yourself,"
                " or set migrate_addresses: false." % (route.describe(), ", ".join(route.unsupported), spec.name)
            )
        new = route
        for port in port_names:
            new = new.on(port, spec.name)
        moves_route.append((route, new))
    return order_route_moves(moves_route)


def _client_moves(
    plan: Plan, spec: BridgeSpec, port_links: list[Link], clients: Iterable[DhcpClient], moves_addr: list[AddressMove]
) -> tuple[list[ClientMove], list[AddressMove]]:
    """(client moves, address moves): the DHCP clients move with the addresses they lease.

    A client move is (client on the port, argv on the bridge, lease file move).
    """
    name = spec.name
    client_moves: list[ClientMove] = []
    if spec.migrate_addresses:
        port_names = {link.name for link in port_links}
        for client in clients:
            if client.interface in port_names:
                client_moves.append((client, _dhcp_client.moved_argv(client, name), _dhcp_client.lease_move(client, name)))
    renewed = {(client.interface, client.family) for client, _argv, _lease in client_moves}
    for old, new in moves_addr:
        if new is not None and new.valid is not None and (old.dev, old.family) not in renewed:
            plan.warnings.append(unrenewed_warning(old, name))
    # A leased address whose client moves along goes to the bridge without the old lease's remaining time: the
    # client may confirm its lease without touching an address that is there already (dhclient-script's REBOOT),
    # and sets the lifetime again at its first renewal, from the lease it holds.
    moves_addr = [(old, replace(new, valid=None, preferred=None) if new is not None and (old.dev, old.family) in renewed else new) for old, new in moves_addr]
    return client_moves, moves_addr


def _keep_connection(
    snapshot: Snapshot,
    spec: BridgeSpec,
    bridge: Link | None,
    connection: Set[str],
    to_attach: list[Link],
    current_ports: list[str],
    moves_addr: list[AddressMove],
) -> None:
    """Raise ModuleError when the plan would cut the connection that runs it (unless force)."""
    name = spec.name
    moved_ips = {normalize_ip(old.ip) for old, _new in moves_addr}
    for link in to_attach:
        cut = [ip for ip in _connection_on(snapshot, link.name, connection) if normalize_ip(ip) not in moved_ips]
        if cut:
            raise ModuleError(
                "Refusing to make %s a port of %s: it carries %s, the address this Ansible connection uses, and it would not move"
                " to the bridge (migrate_addresses: false, or a link-local address), so the connection would be cut."
                " Set migrate_addresses: true, or force: true." % (link.name, name, ", ".join(cut))
            )
    if spec.ports_exclusive and bridge is not None:
        carried = _connection_on(snapshot, name, connection)
        uplinks = [p for p in current_ports if p not in spec.ports and not is_guest_port(snapshot.links[p])]  # ports_of() names links of the snapshot
        if carried and uplinks:
            raise ModuleError(
                "Refusing to detach %s from %s: %s carries %s, the address this Ansible connection uses, and the connection may"
                " run through %s. List %s in ports, or set force: true."
                % (", ".join(uplinks), name, name, ", ".join(carried), " or ".join(uplinks), " and ".join(uplinks))
            )
    if not spec.up:
        carried = _connection_on(snapshot, name, connection) if bridge is not None else []
        carried += [new.ip for _old, new in moves_addr if new is not None and normalize_ip(new.ip) in connection]
        if carried and (bridge is None or bridge.up or moves_addr):
            raise ModuleError(
                "Refusing to leave %s down: it carries %s, the address this Ansible connection uses. Set up: true, or force: true."
                % (name, ", ".join(sorted(set(carried))))
            )


def _plan_bridge_link(plan: Plan, spec: BridgeSpec, bridge: Link | None, mac: str | None, wanted: dict[str, int], current_options: dict[str, int]) -> None:
    """Step 1: the bridge itself, created or set to the wanted MAC, MTU and options."""
    name = spec.name
    if bridge is None:
        create = {"name": name, "mac": mac, "mtu": spec.mtu, "options": wanted}
        details: list[str] = []
        if mac:
            details.append("mac %s" % mac)
        if spec.mtu:
            details.append("mtu %d" % spec.mtu)
        details.extend("%s %s" % (opt, _show_option(opt, spec.options[opt])) for opt in spec.options)
        plan.add(
            "create_bridge", "create bridge %s%s" % (name, " (%s)" % ", ".join(details) if details else ""), create, undo=[("delete_link", {"name": name})]
        )
        return
    if mac and mac != bridge.mac:
        plan.add("set_link", "set %s mac %s (was %s)" % (name, mac, bridge.mac), _set_link(name, mac=mac), undo=[("set_link", _set_link(name, mac=bridge.mac))])
    if spec.mtu and spec.mtu != bridge.mtu:
        plan.add(
            "set_link",
            "set %s mtu %d (was %d)" % (name, spec.mtu, bridge.mtu),
            _set_link(name, mtu=spec.mtu),
            undo=[("set_link", _set_link(name, mtu=bridge.mtu))],
        )
    _plan_options(plan, name, wanted, current_options)


def _plan_onto_bridge(plan: Plan, spec: BridgeSpec, bridge: Link | None, port_links: list[Link], to_attach: list[Link], moves_addr: list[AddressMove]) -> None:
    """Steps 2 to 4: the bridge up, the addresses onto it, then the ports into it."""
    name = spec.name
    # -- 2. up before anything moves onto it -----------------------------------
    if spec.up and not (bridge is not None and bridge.up):
        plan.add("set_link", "bring %s up" % name, _set_link(name, up=True), undo=[("set_link", _set_link(name, up=False))])
    # -- 3. addresses onto the bridge first ------------------------------------
    for old, new in moves_addr:
        if new is not None:
            plan.add("add_address", "add %s to %s (from %s)" % (new.cidr, name, old.dev), {"address": new}, undo=[("del_address", {"address": new})])
    # -- 4. ports ---------------------------------------------------------------
    for link in to_attach:
        undo_master = link.master or ""
        plan.add(
            "set_link", "attach %s to %s" % (link.name, name), _set_link(link.name, master=name), undo=[("set_link", _set_link(link.name, master=undo_master))]
        )
    if spec.up:
        for link in port_links:
            if not link.up:
                plan.add("set_link", "bring port %s up" % link.name, _set_link(link.name, up=True), undo=[("set_link", _set_link(link.name, up=False))])


def _plan_off_ports(
    plan: Plan,
    spec: BridgeSpec,
    bridge: Link | None,
    current_ports: list[str],
    moves_addr: list[AddressMove],
    moves_route: list[tuple[Route, Route]],
    client_moves: list[ClientMove],
) -> None:
    """Steps 5 to 9: the routes, the addresses off the ports, the unlisted ports, down, the DHCP clients."""
    name = spec.name
    # -- 5. routes, each in one atomic replace ----------------------------------
    for old, new in moves_route:
        plan.add(
            "replace_route", "move route '%s' to %s" % (old.describe(), name), {"route": new, "old": old}, undo=[("replace_route", {"route": old, "old": new})]
        )
    # -- 6. addresses off the ports, secondaries first ----------------------------
    for address, _new in reversed(moves_addr):
        plan.add("del_address", "remove %s from %s" % (address.cidr, address.dev), {"address": address}, undo=[("add_address", {"address": address})])
    # -- 7. ports that are not listed --------------------------------------------
    if spec.ports_exclusive:
        for port in current_ports:
            if port not in spec.ports:
                plan.add("set_link", "detach %s from %s" % (port, name), _set_link(port, master=""), undo=[("set_link", _set_link(port, master=name))])
    # -- 8. down, last --------------------------------------------------------------
    if not spec.up and bridge is not None and bridge.up:
        plan.add("set_link", "bring %s down" % name, _set_link(name, up=False), undo=[("set_link", _set_link(name, up=True))])
    # -- 9. the DHCP clients start on the bridge, with the lease carried over --------
    for client, argv, lease in client_moves:
        plan.add(
            "start_dhcp_client",
            "start %s on %s: %s" % (client.name, name, " ".join(argv)),
            {"argv": argv, "lease": lease, "old": client.interface, "new": name},
            undo=[("stop_dhcp_client", {"argv": argv})],
        )


def unrenewed_warning(address: Address, bridge: str) -> str:
    """What to tell the user about ``address``, which moves from a port to ``bridge`` with a finite lifetime."""
    return (
        "%s moves from %s to %s with its lifetime (%d s left): a DHCP client or a router advertisement gave it, and"
        " this module does not move the client, so nothing renews it on %s and it will expire. Run the DHCP client on %s"
        " (stop it on %s first), or give %s a static address." % (address.cidr, address.dev, bridge, address.valid or 0, bridge, bridge, address.dev, bridge)
    )


def expiring_addresses(snapshot: Snapshot, name: str, clients: Iterable[DhcpClient] = ()) -> list[dict[str, Any]]:
    """The user's addresses on ``name`` with a finite lifetime (leases) that no DHCP client of ``clients`` on
    ``name`` renews, as dicts: address, valid_lft, preferred_lft."""
    renewed = {client.family for client in clients if client.interface == name}
    return [
        {"address": a.cidr, "valid_lft": a.valid, "preferred_lft": a.preferred}
        for a in snapshot.addresses_on(name)
        if a.valid is not None and is_migratable_address(a) and a.family not in renewed
    ]


def client_view(client: DhcpClient) -> dict[str, Any]:
    """A DHCP client as the result shows it."""
    return {"name": client.name, "interface": client.interface, "family": "ipv6" if client.family == AF_INET6 else "ipv4", "argv": list(client.argv)}


def route_needs_onlink(route: Route) -> bool:
    """True if adding ``route`` needs an on-link route to its gateway(s) on the new device first.

    The kernel looks a gateway up over the route's device when the route is
    added, and refuses it (ENETUNREACH) without a route there to reach it. A
    route without a gateway (on-link, blackhole...) and a gateway route marked
    ``onlink`` need nothing but the device.
    """
    hops = route.multipath or (Nexthop(route.dev, route.gateway, flags=route.flags),)
    return any(nh.gateway and not nh.flags & RTNH_F_ONLINK for nh in hops)


def order_route_moves(moves: list[tuple[Route, Route]]) -> list[tuple[Route, Route]]:
    """The (old, new) route moves with every route after what it needs: the routes that need nothing
    (on-link, onlink gateways) first, then the gateway routes, in every table, IPv4 and IPv6. Within each
    group the kernel's (the dump's) order stays.
    """
    return sorted(moves, key=lambda move: route_needs_onlink(move[1]))


def _show_option(name: str, value: Any) -> str:
    if OPTION_HOW[name] == "time":
        return "%gs" % value
    return str(value).lower() if isinstance(value, bool) else str(value)


def _plan_options(plan: Plan, name: str, wanted: dict[str, int], current: dict[str, int]) -> None:
    """Option changes of an existing bridge. STP goes off before the timers, and on after them."""
    changes = {opt: raw for opt, raw in wanted.items() if not option_matches(opt, current.get(opt), raw)}
    if not changes:
        return
    stp = changes.pop("stp", None)

    def add(options: dict[str, int]) -> None:
        shown = ", ".join(
            "%s %s (was %s)" % (opt, _show_option(opt, option_from_kernel(opt, raw)), _show_option(opt, option_from_kernel(opt, current[opt])))
            for opt, raw in options.items()
        )
        before = {opt: current[opt] for opt in options}
        plan.add("set_link", "set %s %s" % (name, shown), _set_link(name, options=options), undo=[("set_link", _set_link(name, options=before))])

    if stp is not None and not stp:
        add({"stp": stp})
    if changes:
        add(changes)
    if stp:
        add({"stp": stp})


# --------------------------------------------------------------------------
# Views: what the diff and the result show
# --------------------------------------------------------------------------
def bridge_view(snapshot: Snapshot, name: str, ports: Iterable[str] = ()) -> dict[str, Any]:
    """The bridge as the diff and the result show it: settings, ports, addresses and routes.

    ``ports`` adds the addresses and routes of those ports (the ones a
    migration moves from) under ``port_addresses`` and ``port_routes``.
    """
    link = snapshot.link(name)
    if link is None or link.kind != "bridge":
        return {"name": name, "state": "absent"}
    view: dict[str, Any] = {"name": name, "state": "present", "mac": link.mac, "mtu": link.mtu, "up": link.up}
    options = dict(BRIDGE_DEFAULTS)
    options.update(link.bridge)
    for option in BRIDGE_OPTION_NAMES:
        view[option] = option_from_kernel(option, options[option])
    view["ports"] = snapshot.ports_of(name)
    view["addresses"] = [a.cidr for a in snapshot.addresses_on(name) if not is_link_local(a)]
    view["routes"] = [r.describe() for r in snapshot.routes_using(name) if is_movable_route(r, snapshot.addresses)]
    port_addresses: dict[str, list[str]] = {}
    port_routes: dict[str, list[str]] = {}
    for port in ports:
        if snapshot.link(port) is None:
            continue
        port_addresses[port] = [a.cidr for a in snapshot.addresses_on(port) if not is_link_local(a)]
        port_routes[port] = [r.describe() for r in snapshot.routes_using(port) if is_movable_route(r, snapshot.addresses)]
    if ports:
        view["port_addresses"] = port_addresses
        view["port_routes"] = port_routes
    return view


# --------------------------------------------------------------------------
# Simulation: apply a plan to a snapshot in memory
# --------------------------------------------------------------------------
def simulate(snapshot: Snapshot, steps: Iterable[Step]) -> Snapshot:
    """A copy of ``snapshot`` with ``steps`` applied as the kernel would (the parts this module relies on)."""
    snap = snapshot.copy()
    auto: set[tuple[str, str]] = set()  # bridges whose MAC/MTU the kernel still picks from their ports
    for step in steps:
        _simulate_op(snap, step.op, step.args, auto)
    return snap


def _simulate_op(snap: Snapshot, op: str, args: dict[str, Any], auto: set[tuple[str, str]]) -> None:
    if op in ("stop_dhcp_client", "start_dhcp_client"):
        return  # processes, not kernel state
    simulator = _SIMULATORS.get(op)
    if simulator is None:  # pragma: no cover - a programming error
        raise ValueError("unknown op %s" % op)
    simulator(snap, args, auto)


def _simulate_create_bridge(snap: Snapshot, args: dict[str, Any], auto: set[tuple[str, str]]) -> None:
    index = max([link.index for link in snap.links.values()] + [0]) + 1
    options = dict(BRIDGE_DEFAULTS)
    options.update(args.get("options") or {})
    if options.get("stp"):
        low, high = TIMER_RANGES["forward_delay"]
        options["forward_delay"] = min(max(options["forward_delay"], low * USER_HZ), high * USER_HZ)
    snap.links[args["name"]] = Link(index=index, name=args["name"], kind="bridge", mac=args.get("mac") or "", mtu=args.get("mtu") or 1500, bridge=options)
    if not args.get("mac"):
        auto.add((args["name"], "mac"))
    if not args.get("mtu"):
        auto.add((args["name"], "mtu"))


def _simulate_delete_link(snap: Snapshot, args: dict[str, Any], _auto: set[tuple[str, str]]) -> None:
    name = args["name"]
    snap.links.pop(name, None)
    for link in snap.links.values():
        if link.master == name:
            link.master = None
    snap.addresses = [a for a in snap.addresses if a.dev != name]
    snap.routes = [r for r in snap.routes if not r.uses(name)]


def _simulate_set_link(snap: Snapshot, args: dict[str, Any], auto: set[tuple[str, str]]) -> None:
    link = snap.links[args["name"]]
    if "mac" in args:
        link.mac = args["mac"]
        auto.discard((link.name, "mac"))
    if "mtu" in args:
        link.mtu = args["mtu"]
        auto.discard((link.name, "mtu"))
    if "up" in args:
        link.up = bool(args["up"])
    if "options" in args:
        link.bridge.update(args["options"])
    if "master" in args:
        link.master = args["master"] or None
        master = snap.links.get(link.master) if link.master else None
        if master is not None:
            ports = [snap.links[p] for p in snap.ports_of(master.name)]
            if (master.name, "mac") in auto:
                master.mac = min(p.mac for p in ports)
            if (master.name, "mtu") in auto:
                master.mtu = min(p.mtu for p in ports)


def _simulate_add_address(snap: Snapshot, args: dict[str, Any], _auto: set[tuple[str, str]]) -> None:
    address = args["address"]
    snap.addresses.append(address)
    prefix = kernel_prefix_route(address)
    if prefix is not None and not any(prefix_route_of(r, address) for r in snap.routes):
        snap.routes.append(prefix)


def _simulate_del_address(snap: Snapshot, args: dict[str, Any], _auto: set[tuple[str, str]]) -> None:
    gone = args["address"]
    snap.addresses = [a for a in snap.addresses if not (a.dev == gone.dev and a.key == gone.key and a.prefixlen == gone.prefixlen)]
    # The kernel keeps the prefix route while another address of the device is in that prefix (a secondary goes alone).
    remaining = [a for a in snap.addresses if a.dev == gone.dev]
    snap.routes = [r for r in snap.routes if not prefix_route_of(r, gone) or any(prefix_route_of(r, a) for a in remaining)]


def _simulate_replace_route(snap: Snapshot, args: dict[str, Any], _auto: set[tuple[str, str]]) -> None:
    new, old = args["route"], args.get("old")
    snap.routes = [r for r in snap.routes if r.key != new.key and r != old]
    snap.routes.append(new)


_SIMULATORS = {
    "create_bridge": _simulate_create_bridge,
    "delete_link": _simulate_delete_link,
    "set_link": _simulate_set_link,
    "add_address": _simulate_add_address,
    "del_address": _simulate_del_address,
    "replace_route": _simulate_replace_route,
}

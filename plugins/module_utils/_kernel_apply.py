# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying a plan to the kernel, with its undo, and planning the guard's restore.

iproute_session() opens one pyroute2 IPRoute socket (the only use of
pyroute2); apply_plan() runs a Plan's Steps in that session through a
KernelApplier and, on any error, undoes the steps already applied in reverse
order before it raises ApplyError. plan_restore() and plan_client_restore()
return the Steps that bring the runtime state back to a saved snapshot (the
guard's rollback), for the same applier.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Container, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils import _dhcp_client
from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_plan import Plan, Step, route_needs_onlink
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._kernel_snapshot import (
    IFA_SETTABLE_FLAGS,
    IFF_UP,
    INFINITY_LIFETIME,
    Snapshot,
    is_migratable_address,
    is_movable_route,
    linkinfo_bridge,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._pyroute2_dep import iproute, netlink_error

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from ansible_collections.kvmhost.bridging.plugins.module_utils._kernel_snapshot import Address, Link, Route

TEST_FAIL_ENV = "KVMB_TEST_FAIL_AFTER_STEP"


# --------------------------------------------------------------------------
# Applying a plan to the kernel
# --------------------------------------------------------------------------
@contextmanager
def iproute_session() -> Iterator[Any]:
    """Yield one pyroute2 IPRoute socket for the current network namespace; always close it."""
    ipr = iproute()
    try:
        yield ipr
    finally:
        ipr.close()


class InjectedFailure(Exception):
    """The failure the KVMB_TEST_FAIL_AFTER_STEP testing aid asks for."""


class ApplyError(Exception):
    """A step failed; the steps before it were undone. Carries what happened."""

    def __init__(self, step_number: int, step: Step | None, cause: BaseException, done: list[str], restore_errors: list[str]) -> None:
        super().__init__(str(cause))
        self.step_number = step_number
        self.step = step
        self.cause = cause
        self.done = done
        self.restore_errors = restore_errors


def fail_after_step_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """The step number after which the KVMB_TEST_FAIL_AFTER_STEP testing aid injects a failure, or None.

    A testing aid only: it lets the integration tests prove the restore on a
    real kernel. It must be a positive integer; anything else is an error, so a
    stray value cannot go unnoticed.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(TEST_FAIL_ENV)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ModuleError("%s=%r is not a positive step number; unset it (it is a testing aid)." % (TEST_FAIL_ENV, value))
    return number


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, netlink_error()):
        code = getattr(exc, "code", 0)
        return "%s (errno %d, %s)" % (os.strerror(code) if code else exc, code, errno.errorcode.get(code, "?"))
    return str(exc) or exc.__class__.__name__


class KernelApplier:
    """Runs plan ops over one IPRoute session; devices are looked up by name when needed."""

    # Errors an undo may meet because the step it undoes did not (fully) happen.
    UNDO_TOLERATED = {
        "delete_link": (errno.ENODEV,),
        "del_address": (errno.EADDRNOTAVAIL, errno.ENODEV),
        "add_address": (errno.EEXIST,),
        "set_link": (),
        "replace_route": (),
        "create_bridge": (errno.EEXIST,),
    }

    def __init__(self, ipr: Any, module: Any = None) -> None:
        self.ipr = ipr
        self.module = module  # for the lease file a DHCP client takes along (atomic_write)

    def index(self, name: str | None) -> int:  # None (a nexthop without a device) finds no link: ModuleError
        found: list[int] = self.ipr.link_lookup(ifname=name)
        if not found:
            raise ModuleError("%s does not exist (any more)." % name)
        return found[0]

    def run(self, op: str, args: Mapping[str, Any], undoing: bool = False) -> None:
        try:
            getattr(self, "op_" + op)(**args)
        except netlink_error() as exc:
            if undoing and getattr(exc, "code", None) in self.UNDO_TOLERATED.get(op, ()):
                return
            raise

    # -- ops ------------------------------------------------------------------
    def op_create_bridge(self, name: str, mac: str | None = None, mtu: int | None = None, options: dict[str, int] | None = None) -> None:
        request: dict[str, Any] = {"ifname": name, "IFLA_LINKINFO": linkinfo_bridge(options or {})}
        if mac:
            request["address"] = mac
        if mtu:
            request["mtu"] = mtu
        self.ipr.link("add", **request)

    def op_delete_link(self, name: str) -> None:
        found = self.ipr.link_lookup(ifname=name)
        if found:
            self.ipr.link("del", index=found[0])

    def op_set_link(
        self,
        name: str,
        mac: str | None = None,
        mtu: int | None = None,
        up: bool | None = None,
        master: str | None = None,
        options: dict[str, int] | None = None,
    ) -> None:
        index = self.index(name)
        if options:
            self.ipr.link("set", index=index, IFLA_LINKINFO=linkinfo_bridge(options))
        if mac:
            self.ipr.link("set", index=index, address=mac)
        if mtu:
            self.ipr.link("set", index=index, mtu=mtu)
        if master is not None:
            self.ipr.link("set", index=index, master=self.index(master) if master else 0)
        if up is not None:
            self.ipr.link("set", index=index, flags=IFF_UP if up else 0, change=IFF_UP)

    def _address_request(self, address: Address) -> dict[str, Any]:
        request: dict[str, Any] = {"index": self.index(address.dev), "family": address.family, "prefixlen": address.prefixlen, "address": address.address}
        if address.local:
            request["local"] = address.local
        return request

    def op_add_address(self, address: Address) -> None:
        request = self._address_request(address)
        if address.broadcast:
            request["broadcast"] = address.broadcast
        if address.label:
            request["label"] = address.label
        if address.scope:
            request["scope"] = address.scope
        flags = address.flags & IFA_SETTABLE_FLAGS
        if flags:
            request["IFA_FLAGS"] = flags
        if address.valid is not None or address.preferred is not None:
            valid = INFINITY_LIFETIME if address.valid is None else address.valid
            preferred = INFINITY_LIFETIME if address.preferred is None else min(address.preferred, valid)
            # ifa_* for pyroute2 >= 0.8, valid/preferred for 0.7's request filter: both read their own keys.
            request["IFA_CACHEINFO"] = {"ifa_valid": valid, "ifa_preferred": preferred, "valid": valid, "preferred": preferred, "cstamp": 0, "tstamp": 0}
        if address.proto is not None:
            request["IFA_PROTO"] = address.proto
        if address.rt_priority:
            request["IFA_RT_PRIORITY"] = address.rt_priority
        self.ipr.addr("add", **request)

    def op_del_address(self, address: Address) -> None:
        self.ipr.addr("del", **self._address_request(address))

    def _route_request(self, route: Route) -> dict[str, Any]:
        request: dict[str, Any] = {
            "family": route.family,
            "table": route.table,
            "dst_len": route.dst_len,
            "tos": route.tos,
            "proto": route.proto,
            "scope": route.scope,
            "type": route.type,
        }
        if route.dst:
            request["dst"] = "%s/%d" % (route.dst, route.dst_len)
        if route.src:
            request["src"] = "%s/%d" % (route.src, route.src_len)
            request["src_len"] = route.src_len
        if route.flags:
            request["flags"] = route.flags
        if route.multipath:
            hops: list[dict[str, Any]] = []
            for nh in route.multipath:
                hop: dict[str, Any] = {"oif": self.index(nh.dev), "hops": nh.hops, "flags": nh.flags}
                if nh.gateway:
                    hop["gateway"] = nh.gateway
                hops.append(hop)
            request["multipath"] = hops
        else:
            if route.dev:
                request["oif"] = self.index(route.dev)
            if route.gateway:
                request["gateway"] = route.gateway
        if route.priority is not None:
            request["priority"] = route.priority
        if route.prefsrc:
            request["prefsrc"] = route.prefsrc
        if route.pref is not None:
            request["RTA_PREF"] = route.pref
        if route.flow is not None:
            request["RTA_FLOW"] = route.flow
        if route.metrics:
            request["metrics"] = dict(route.metrics)
        return request

    def op_replace_route(self, route: Route, old: Route | None = None) -> None:
        self.ipr.route("replace", **self._route_request(route))
        if old is not None and old.key != route.key:
            self.op_delete_route(old)
        elif old is not None:
            # Same key: the replace took the old route's place. Where the kernel
            # kept both (an IPv6 multipath sibling), remove the old one.
            with suppress(ModuleError):
                self.op_delete_route(old)

    def op_stop_dhcp_client(self, argv: Sequence[str]) -> None:
        _dhcp_client.stop_client(argv)

    def op_start_dhcp_client(
        self, argv: Sequence[str], lease: tuple[str | None, str | None] | None = None, old: str | None = None, new: str | None = None
    ) -> None:
        _dhcp_client.start_client(argv, lease=lease, module=self.module, old=old, new=new)

    def op_delete_route(self, route: Route) -> None:
        try:
            self.ipr.route("del", **self._route_request(route))
        except netlink_error() as exc:
            if getattr(exc, "code", None) != errno.ESRCH:
                raise


def apply_plan(applier: KernelApplier, plan: Plan, fail_after_step: int | None = None) -> list[str]:
    """Run the plan's steps; on any error undo the applied ones in reverse order and raise ApplyError.

    Returns the descriptions of the steps applied. ``fail_after_step`` (the
    testing aid) raises InjectedFailure right after that step number.
    """
    done: list[Step] = []
    number = 0
    step: Step | None = None
    try:
        for number, step in enumerate(plan.steps, 1):
            applier.run(step.op, step.args)
            done.append(step)
            if fail_after_step is not None and number == fail_after_step:
                raise InjectedFailure("failure injected after step %d by %s (a testing aid)" % (number, TEST_FAIL_ENV))
    except BaseException as exc:
        restore_errors: list[str] = []
        for applied in reversed(done):
            for op, args in applied.undo:
                try:
                    applier.run(op, args, undoing=True)
                except Exception as undo_exc:  # keep undoing the rest
                    restore_errors.append("undo of '%s' failed: %s" % (applied.description, describe_error(undo_exc)))
        if not isinstance(exc, Exception):
            raise
        raise ApplyError(number, step, exc, [s.description for s in done], restore_errors) from exc
    return [s.description for s in done]


# --------------------------------------------------------------------------
# The guard's restore: Steps back to a saved snapshot
# --------------------------------------------------------------------------
def _restorable_addresses(snapshot: Snapshot, name: str) -> dict[tuple[int, str, int], Address]:
    """The addresses of ``name`` that a restore manages: the user's, not the kernel's own."""
    return {(a.family, a.ip, a.prefixlen): a for a in snapshot.addresses_on(name) if is_migratable_address(a)}


def _restorable_routes(snapshot: Snapshot, names: Collection[str]) -> list[Route]:
    routes: list[Route] = []
    for route in snapshot.routes:
        if is_movable_route(route, snapshot.addresses) and any(route.uses(name) for name in names) and route not in routes:
            routes.append(route)
    return routes


def restore_scope(saved: Snapshot, now: Snapshot, interfaces: Iterable[str]) -> set[str]:
    """The links a restore looks at: ``interfaces`` (or every link but loopback) and the ports of those that are bridges."""
    every = {name for name, link in list(saved.links.items()) + list(now.links.items()) if not link.loopback}
    names = set(interfaces) if interfaces else every
    for snap in (saved, now):
        for name in list(names):
            link = snap.link(name)
            if link is not None and link.kind == "bridge":
                names.update(snap.ports_of(name))
    return names


def plan_restore(saved: Snapshot, now: Snapshot, interfaces: Iterable[str] = ()) -> list[Step]:
    """The Steps (no undo) that bring ``now`` back to ``saved`` for the links in scope.

    Bridges that did not exist are deleted (other new links, such as a guest's
    tap, are left alone); bridges that are gone are created again; then the
    masters, MTUs, MACs, bridge options and link states, the addresses (added
    before the extra ones are removed) and last the routes, whose gateways need
    the addresses. The kernel's own addresses and routes are not touched.
    """
    names = sorted(restore_scope(saved, now, interfaces))
    steps = _restore_bridges(saved, now, names)
    gone = {step.args["name"] for step in steps if step.op == "delete_link"}
    kept = [name for name in names if saved.link(name) is not None and name not in gone]
    steps += _restore_links(saved, now, kept)
    steps += _restore_addresses(saved, now, kept)
    steps += _restore_routes(saved, now, set(names), gone)
    return steps


def _restore_bridges(saved: Snapshot, now: Snapshot, names: Sequence[str]) -> list[Step]:
    """Delete the bridges that did not exist, then create again those that are gone."""
    steps: list[Step] = []
    for name in names:
        old, new = saved.link(name), now.link(name)
        if old is None and new is not None and new.kind == "bridge":
            steps.append(Step("delete_link", "delete bridge %s, which did not exist" % name, {"name": name}))
    for name in names:
        old, new = saved.link(name), now.link(name)
        if old is not None and new is None and old.kind == "bridge":
            args = {"name": name, "mac": old.mac or None, "mtu": old.mtu or None, "options": dict(old.bridge)}
            steps.append(Step("create_bridge", "create bridge %s again" % name, args))
    return steps


def _link_changes(old: Link, new: Link | None) -> dict[str, Any]:
    """What set_link must change to bring link ``new`` (None: created again) back to ``old``."""
    changes: dict[str, Any] = {}
    master_differs = new is None or (old.master or None) != (new.master or None)
    if master_differs and (old.master or new is not None):
        changes["master"] = old.master or ""
    if new is None:  # created again
        return changes
    if old.mtu and old.mtu != new.mtu:
        changes["mtu"] = old.mtu
    if old.mac and old.mac != new.mac:
        changes["mac"] = old.mac
    if old.kind == "bridge":
        options = {key: value for key, value in old.bridge.items() if new.bridge.get(key) != value}
        if options:
            changes["options"] = options
    return changes


def _restore_links(saved: Snapshot, now: Snapshot, names: Sequence[str]) -> list[Step]:
    """Masters, MTUs, MACs and bridge options, then the link states, of the links that were there."""
    steps: list[Step] = []
    for name in names:
        old, new = saved.link(name), now.link(name)
        if old is None or (new is None and old.kind != "bridge"):  # old: plan_restore passes the links of saved
            continue
        changes = _link_changes(old, new)
        if changes:
            text = ", ".join("%s %s" % (key, value if value != "" else "none") for key, value in sorted(changes.items()))
            steps.append(Step("set_link", "set %s %s" % (name, text), dict(changes, name=name)))
    for name in names:
        old, new = saved.link(name), now.link(name)
        if old is not None and (new is None or old.up != new.up):
            steps.append(Step("set_link", "bring %s %s" % (name, "up" if old.up else "down"), {"name": name, "up": old.up}))
    return steps


def _restore_addresses(saved: Snapshot, now: Snapshot, names: Sequence[str]) -> list[Step]:
    """The missing addresses back first, then the extra ones removed."""
    steps: list[Step] = []
    for name in names:
        before = _restorable_addresses(saved, name)
        after = _restorable_addresses(now, name) if now.link(name) is not None else {}
        for key, address in before.items():
            if key not in after:
                steps.append(Step("add_address", "add %s to %s" % (address.cidr, name), {"address": address}))
    for name in names:
        if now.link(name) is None:
            continue
        before = _restorable_addresses(saved, name)
        for key, address in _restorable_addresses(now, name).items():
            if key not in before:
                steps.append(Step("del_address", "remove %s from %s" % (address.cidr, name), {"address": address}))
    return steps


def _restore_routes(saved: Snapshot, now: Snapshot, names: Collection[str], gone: Collection[str]) -> list[Step]:
    """The user's routes back (on-link ones before the gateways they reach), then the extra ones removed."""
    steps: list[Step] = []
    before_routes = _restorable_routes(saved, names)
    now_routes = [r for r in _restorable_routes(now, names) if not any(r.uses(name) for name in gone)]
    for route in sorted(before_routes, key=route_needs_onlink):  # on-link routes before the gateways they reach
        if route not in now_routes:
            steps.append(Step("replace_route", "restore route '%s'" % route.describe(), {"route": route}))
    restored_keys = {route.key for route in before_routes}
    for route in now_routes:
        if route not in before_routes and route.key not in restored_keys:
            steps.append(Step("delete_route", "remove route '%s'" % route.describe(), {"route": route}))
    return steps


def plan_client_restore(saved: Iterable[Sequence[str]], now: Iterable[_dhcp_client.DhcpClient], names: Container[str]) -> tuple[list[Step], list[Step]]:
    """(stops, starts): the Steps that bring the DHCP clients of ``names`` back to ``saved``.

    ``saved``: the command lines (lists) the snapshot found; ``now``: the
    DhcpClients running. A client that was not there (the one a bridging
    started on the bridge) stops; one that is gone (the one it stopped on the
    NIC) starts again, as it ran, with its own lease file.
    """
    saved = [tuple(argv) for argv in saved]
    wanted = [argv for argv in saved if (_dhcp_client.parse_client(argv) or _NO_CLIENT).interface in names]
    running = [client.argv for client in now if client.interface in names]
    stops = [Step("stop_dhcp_client", "stop %s" % " ".join(argv), {"argv": argv}) for argv in running if argv not in saved]
    starts = [Step("start_dhcp_client", "start %s" % " ".join(argv), {"argv": argv}) for argv in wanted if argv not in running]
    return stops, starts


_NO_CLIENT = _dhcp_client.DhcpClient("", 0, (), "")

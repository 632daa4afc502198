# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge interfaces of libvirt domains: the libvirt side (read, apply).

A thin libvirt adapter over the pure part in ``_libvirt_xml`` (domain and
network XML, the interface plan): ``open_connection``, ``lookup_domain``,
``bridge_state``, ``mac_users``, ``domains_of``, ``tap_owners``,
``networks_of``, ``read_domains`` and ``ensure_interface`` (read once, plan,
apply unless check mode, read back). Config changes are made with defineXML of
the edited persistent XML; live changes with attach/update/detachDeviceFlags.

Other modules and roles can reuse ``open_connection``, ``domains_of`` (every
domain's interfaces), ``tap_owners`` (which domain is behind each vnetN tap),
``networks_of`` and ``bridge_state``.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_dep import (
    HAS_LIBVIRT,
    VIR_DOMAIN_AFFECT_LIVE,
    VIR_DOMAIN_XML_INACTIVE,
    VIR_DOMAIN_XML_SECURE,
    VIR_ERR_NO_DOMAIN,
    VIR_ERR_NO_INTERFACE,
    VIR_ERR_NO_SUPPORT,
    LibvirtError,
    libvirt,
    silence_libvirt_stderr,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_xml import (
    DomainXML,
    element_text,
    find_mac_conflicts,
    interface_info,
    interfaces_of,
    network_info,
    parse_xml,
    plan_interface,
    redact,
    uri_is_local,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_xml import Change, Desired, InterfaceInfo

SYSFS_NET = "/sys/class/net"


# ---------------------------------------------------------------------------
# libvirt adapter


def open_connection(uri: str) -> Any:
    """A read-write libvirt connection; ModuleError saying what to check when libvirt is not reachable."""
    silence_libvirt_stderr()
    try:
        conn = libvirt.open(uri)
        error: str | Exception = "no connection"
    except LibvirtError as exc:
        conn, error = None, exc
    if conn is None:
        raise ModuleError(
            "libvirt is not reachable at %s: %s. Check that the libvirt daemon runs on the hypervisor "
            "(systemctl status libvirtd, or virtqemud on modular set-ups), that the URI is right, and that the "
            "connecting user may use it (root, or a member of the libvirt group)." % (uri, error),
            uri=uri,
        )
    return conn


def lookup_domain(conn: Any, name: str, uri: str) -> Any:
    """The domain by name (or UUID); ModuleError listing the domains that exist."""
    try:
        return conn.lookupByName(name)
    except LibvirtError as exc:
        if exc.get_error_code() != VIR_ERR_NO_DOMAIN:
            raise ModuleError("cannot look up domain %s at %s: %s" % (name, uri, exc)) from None
    if re.fullmatch(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", name):
        try:
            return conn.lookupByUUIDString(name)
        except LibvirtError:
            pass
    try:
        names = sorted(dom.name() for dom in conn.listAllDomains(0))
    except LibvirtError:
        names = []
    raise ModuleError(
        "no such domain %r at %s; the domains there are: %s. Define the domain first (virsh define) or fix the name." % (name, uri, ", ".join(names) or "none"),
        uri=uri,
    )


def read_port_macs(bridge: str, sysfs: str = SYSFS_NET) -> dict[str, str]:
    """{port name: MAC} of the bridge's ports on this host (empty when there is no such bridge)."""
    brif = os.path.join(sysfs, bridge, "brif")
    macs: dict[str, str] = {}
    try:
        ports = sorted(os.listdir(brif))
    except OSError:
        return macs
    for port in ports:
        try:
            with open(os.path.join(sysfs, port, "address")) as handle:
                macs[port] = handle.read().strip().lower()
        except OSError:
            continue
    return macs


def bridge_state(bridge: str, sysfs: str = SYSFS_NET) -> str | None:
    """'bridge', 'other' (a link that is not a bridge) or None (no such link) on this host."""
    base = os.path.join(sysfs, bridge)
    if os.path.isdir(os.path.join(base, "bridge")):
        return "bridge"
    if os.path.exists(base):
        return "other"
    return None


def check_bridge(conn: Any, uri: str, bridge: str, sysfs: str = SYSFS_NET) -> str | None:
    """ModuleError when the bridge does not exist on the hypervisor host.

    Local URIs (qemu:///system, qemu:///session, test:///...): the host the module
    runs on, through sysfs. Remote URIs: libvirt's interface API; a warning
    (returned) when that driver cannot tell.
    """
    if uri_is_local(uri):
        state = bridge_state(bridge, sysfs)
        if state == "bridge":
            return None
        if state == "other":
            raise ModuleError(
                "%s on the managed host is not a bridge (%s/%s/bridge does not exist); attach the domain to a "
                "bridge, for example the one %s is a port of." % (bridge, sysfs, bridge, bridge),
                bridge=bridge,
            )
        raise ModuleError(
            "there is no bridge %s on the managed host (no %s/%s); create it first (for example with "
            "kvmhost.bridging.bridge) or fix the name." % (bridge, sysfs, bridge),
            bridge=bridge,
        )
    try:
        iface = conn.interfaceLookupByName(bridge)
        kind = parse_xml(iface.XMLDesc(0), "interface XML").get("type")
    except LibvirtError as exc:
        if exc.get_error_code() == VIR_ERR_NO_INTERFACE:
            raise ModuleError("there is no bridge %s on the hypervisor host of %s; create it first or fix the name." % (bridge, uri), bridge=bridge) from None
        return "could not check that bridge %s exists on the hypervisor host of %s: %s" % (bridge, uri, exc)
    if kind != "bridge":
        raise ModuleError("%s on the hypervisor host of %s is not a bridge (libvirt says type %s)." % (bridge, uri, kind), bridge=bridge)
    return None


def _domain_xmls(dom: Any) -> list[str]:
    """The live XML (running domains) and the persistent XML (persistent domains) of a domain."""
    xmls = []
    if dom.isActive():
        xmls.append(dom.XMLDesc(0))
    if dom.isPersistent():
        xmls.append(dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE))
    return xmls


def _network_bridges(conn: Any) -> Callable[[str | None], str | None]:
    """A function network name -> its bridge name (cached; None when unknown)."""
    cache: dict[str | None, str | None] = {}

    def bridge_of(network: str | None) -> str | None:
        if network not in cache:
            try:
                cache[network] = conn.networkLookupByName(network).bridgeName()
            except LibvirtError:
                cache[network] = None
        return cache[network]

    return bridge_of


def mac_users(
    conn: Any, skip_uuid: str | None = None, uri: str | None = None, bridge: str | None = None, sysfs: str = SYSFS_NET, skip_ports: Collection[str] = ()
) -> list[tuple[str, str, str]]:
    """Every (who, mac, bridge) of the other domains (live and persistent) and, for a local URI, of the ports of ``bridge``."""
    users = []
    bridge_of = _network_bridges(conn)
    for dom in conn.listAllDomains(0):
        if skip_uuid is not None and dom.UUIDString() == skip_uuid:
            continue
        try:
            xmls = _domain_xmls(dom)
        except LibvirtError:
            continue  # went away meanwhile
        for xml_text in xmls:
            for info in interfaces_of(xml_text):
                on = info["bridge"]
                if info["type"] == "network" and not on:
                    on = bridge_of(info["network"])
                if info["mac"] and on:
                    users.append(("domain %s" % dom.name(), info["mac"], on))
    if bridge and uri_is_local(uri):
        for port, mac in read_port_macs(bridge, sysfs).items():
            if port not in skip_ports:
                users.append(("port %s of %s on the managed host" % (port, bridge), mac, bridge))
    return users


def domains_of(conn: Any) -> list[dict[str, Any]]:
    """Every domain with the interfaces of its running domain (view ``live``) and persistent definition (``config``).

    A list, sorted by name, of {domain, uuid, active, persistent, interfaces}; each interface is an
    ``interface_info`` dict with ``view`` added. A domain that goes away while it is read is left out.
    """
    domains = []
    for dom in conn.listAllDomains(0):
        try:
            name, uuid = dom.name(), dom.UUIDString()
            active, persistent = bool(dom.isActive()), bool(dom.isPersistent())
            views = [("live", dom.XMLDesc(0))] if active else []
            if persistent:
                views.append(("config", dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE)))
        except LibvirtError:
            continue
        interfaces = [dict(info, view=view) for view, xml_text in views for info in interfaces_of(xml_text)]
        domains.append({"domain": name, "uuid": uuid, "active": active, "persistent": persistent, "interfaces": interfaces})
    return sorted(domains, key=lambda item: item["domain"])


def taps_of(domains: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str | None]]:
    """{tap name: {domain, mac, bridge, model}} from the running domains' interfaces in ``domains_of``'s list."""
    owners = {}
    for item in domains:
        for info in item["interfaces"]:
            if info["view"] == "live" and info["target"]:
                owners[info["target"]] = {"domain": item["domain"], "mac": info["mac"], "bridge": info["bridge"], "model": info["model"]}
    return owners


def tap_owners(conn: Any) -> dict[str, dict[str, str | None]]:
    """{tap name: {domain, mac, bridge, model}} for every interface of every running domain."""
    return taps_of(domains_of(conn))


BRIDGE_STATES: dict[str | None, str] = {"bridge": "bridge", "other": "not_a_bridge", None: "missing"}


def networks_of(conn: Any) -> list[dict[str, Any]]:
    """Every libvirt network (``network_info``), sorted by name; one that goes away while it is read is left out."""
    networks = []
    for net in conn.listAllNetworks(0):
        try:
            networks.append(network_info(net.XMLDesc(0), bool(net.isActive()), bool(net.autostart())))
        except (LibvirtError, ModuleError):
            continue
    return sorted(networks, key=lambda item: item["network"] or "")


def read_domains(uri: str | None, sysfs: str = SYSFS_NET) -> dict[str, Any]:
    """What libvirt at ``uri`` says about its domains, or why it cannot say. Never raises, never fails a task.

    {uri, status, msg, domains, networks}: ``status`` is ``ok``, ``off`` (``uri`` is None: not looked up), ``missing``
    (no libvirt-python), ``unreachable`` (no connection) or ``error`` (reading the domains failed); ``msg`` says
    why, or how many domains there are, in a few words. ``domains`` is ``domains_of``'s list; for a local URI each interface of type bridge
    also gets ``bridge_state`` (``bridge``, ``not_a_bridge`` or ``missing`` on this host), else null.
    ``networks`` is ``networks_of``'s list (empty where the driver has no networks).
    """
    result: dict[str, Any] = {"uri": uri, "status": "ok", "msg": None, "domains": [], "networks": []}
    if uri is None:
        return dict(result, status="off", msg="not looked up (libvirt: never)")
    if not HAS_LIBVIRT:
        return dict(result, status="missing", msg="libvirt-python is not installed for this Python (python3-libvirt)")
    silence_libvirt_stderr()
    try:
        conn = libvirt.openReadOnly(uri)
    except LibvirtError as exc:
        return dict(result, status="unreachable", msg="not reachable: %s" % exc)
    if conn is None:
        return dict(result, status="unreachable", msg="not reachable: no connection")
    try:
        domains = domains_of(conn)
        try:
            result["networks"] = networks_of(conn)
        except LibvirtError:  # a driver without networks: the domains still tell
            result["networks"] = []
    except (LibvirtError, ModuleError) as exc:
        return dict(result, status="error", msg="reading the domains failed: %s" % exc)
    finally:
        conn.close()
    running = sum(1 for item in domains if item["active"])
    result["msg"] = "%d domain%s, %d running" % (len(domains), "" if len(domains) == 1 else "s", running)
    local = uri_is_local(uri)
    for item in domains:
        for info in item["interfaces"]:
            known = local and info["type"] == "bridge" and info["bridge"]
            info["bridge_state"] = BRIDGE_STATES[bridge_state(info["bridge"], sysfs)] if known else None
    result["domains"] = domains
    return result


def _read_views(dom: Any, live: bool, config: bool) -> dict[str, tuple[str, str]]:
    """name -> (display XML text, XML to edit) for the views the task covers."""
    views = {}
    if config:
        views["config"] = (dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE), dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE))
    if live:
        text = dom.XMLDesc(0)
        views["live"] = (text, text)
    return views


def _apply_live(dom: Any, uri: str, change: Change) -> None:
    device = element_text(change.element)
    call = {"add": dom.attachDeviceFlags, "update": dom.updateDeviceFlags, "remove": dom.detachDeviceFlags}
    try:
        call[change.action](device, VIR_DOMAIN_AFFECT_LIVE)
    except LibvirtError as exc:
        if exc.get_error_code() == VIR_ERR_NO_SUPPORT:
            raise ModuleError(
                "the libvirt driver at %s cannot change the devices of a running domain (%s); set live: false "
                "to change only the persistent definition, which takes effect when the domain next starts." % (uri, exc)
            ) from None
        raise ModuleError("libvirt refused to %s interface %s of the running domain: %s" % (change.action, change.mac, exc)) from None


def _current_interface(views_after: Mapping[str, DomainXML], mac: str | None) -> InterfaceInfo | None:
    """The interface as it is after the task: the persistent view first, then the live one."""
    for name in ("config", "live"):
        view = views_after.get(name)
        if view is not None and mac:
            elem = view.by_mac(mac)
            if elem is not None:
                return interface_info(elem)
    return None


def _refuse_mac_conflicts(conn: Any, uri: str, dom: Any, desired: Desired, mac: str | None, live_text: str | None, sysfs: str) -> None:
    """ModuleError when another domain, or a port of the bridge on this host, has ``mac`` on the bridge."""
    own_ports = {info["target"] for info in interfaces_of(live_text) if info["target"]} if live_text else set()
    users = mac_users(conn, skip_uuid=dom.UUIDString(), uri=uri, bridge=desired.bridge, sysfs=sysfs, skip_ports=own_ports)
    conflicts = find_mac_conflicts(mac, desired.bridge, users)
    if conflicts:
        raise ModuleError(
            "mac %s is already used on bridge %s by %s; two network cards with one MAC on one bridge break "
            "each other's traffic. Give this interface another mac (or leave mac out to derive one)." % (mac, desired.bridge, ", ".join(conflicts)),
            mac=mac,
            conflicts=conflicts,
        )


def _apply(conn: Any, dom: Any, uri: str, views: Mapping[str, DomainXML], changes: Sequence[Change]) -> None:
    """Live changes first (the ones a hypervisor may refuse), then one defineXML of the edited persistent XML."""
    done = []
    try:
        for change in changes:
            if change.view == "live":
                _apply_live(dom, uri, change)
                done.append(change.describe())
        if "config" in {change.view for change in changes}:
            try:
                conn.defineXML(views["config"].to_string())
            except LibvirtError as exc:
                raise ModuleError("libvirt refused the new persistent definition of %s: %s" % (dom.name(), exc)) from None
            done.extend(change.describe() for change in changes if change.view == "config")
    except ModuleError as exc:
        raise ModuleError(exc.msg, changed=bool(done), done=done, **exc.result) from None


def _pending_unplugs(live_text: str, changes: Iterable[Change]) -> list[str]:
    """Warnings for live removals that the guest has not acknowledged yet."""
    left = {info["mac"] for info in interfaces_of(live_text)}
    return [
        "the guest has not released interface %s yet; libvirt removes it from the running domain when the guest acknowledges the unplug" % change.mac
        for change in changes
        if change.view == "live" and change.action == "remove" and change.mac in left
    ]


def ensure_interface(
    conn: Any, uri: str, desired: Desired, live: bool = True, config: bool = True, check_mode: bool = False, sysfs: str = SYSFS_NET
) -> tuple[dict[str, Any], list[str]]:
    """Read the domain once, plan, apply unless check mode, read back. Returns (result, warnings)."""
    if not live and not config:
        raise ModuleError("live and config are both false: there is nothing to change; set at least one of them")
    warnings = []
    dom = lookup_domain(conn, desired.domain, uri)
    name = dom.name()
    desired.domain = name  # the derived MAC hangs on the real name, also when a UUID was given
    active, persistent = bool(dom.isActive()), bool(dom.isPersistent())
    if config and not persistent:
        raise ModuleError(
            "domain %s is transient: it has no persistent definition to change; set config: false to change "
            "only the running domain (the change is lost when it stops), or define the domain first." % name
        )
    live = live and active  # a domain that is not running has no live side to change
    if desired.state == "present":
        warning = check_bridge(conn, uri, desired.bridge, sysfs)
        if warning:
            warnings.append(warning)

    raw = _read_views(dom, live, config)
    before_text = {view: shown for view, (shown, _edit) in raw.items()}
    views = {view: DomainXML(edit) for view, (_shown, edit) in raw.items()}
    mac, changes = plan_interface(desired, views)
    if any(change.brings_mac_to(desired.bridge) for change in changes):
        _refuse_mac_conflicts(conn, uri, dom, desired, mac, before_text.get("live"), sysfs)

    after_text = {view: views[view].to_string() for view in views}
    if changes and not check_mode:
        _apply(conn, dom, uri, views, changes)
        dom = lookup_domain(conn, name, uri)
        after_text = {view: shown for view, (shown, _edit) in _read_views(dom, live and bool(dom.isActive()), config).items()}
        if "live" in after_text:
            warnings.extend(_pending_unplugs(after_text["live"], changes))

    views_after = {view: DomainXML(text) for view, text in after_text.items()}
    interface = _current_interface(views_after, mac) if desired.state == "present" else None
    if interface is not None and live:
        live_elem = views_after["live"].by_mac(mac) if "live" in views_after else None
        interface["tap"] = interface_info(live_elem)["target"] if live_elem is not None else None

    changed_views = {change.view for change in changes}
    diff = [
        {
            "before_header": "%s (%s)" % (name, view),
            "after_header": "%s (%s)" % (name, view),
            "before": redact(before_text[view]),
            "after": redact(after_text[view]),
        }
        for view in before_text
        if view in changed_views
    ]
    result = {
        "changed": bool(changes),
        "domain": {"name": name, "uuid": dom.UUIDString(), "active": active, "persistent": persistent},
        "interface": interface,
        "changes": [change.as_dict() for change in changes],
        "diff": diff,
    }
    return result, warnings

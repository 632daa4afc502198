# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt's domain and network XML, pure (no libvirt, no host): decode it and plan an interface's edits.

- MAC derivation (``derive_mac``; the rules are _names'), the NIC model check
  (``check_model``) and ``uri_is_local``.
- The domain XML as an ElementTree (``DomainXML``, edited in place, indented as
  libvirt does), what a domain's interfaces are (``interface_info``,
  ``interfaces_of``), ``redact`` for diffs, and a network's XML
  (``network_info``).
- The plan (``Desired``, ``plan_interface``, ``Change``), which edits copies of
  the domain XML and returns the list of changes; ``find_mac_conflicts``.

Unit-tested without libvirt. The libvirt side (connections, reading domains,
applying a plan) is ``_libvirt_iface``.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import xml.etree.ElementTree as ET
from io import StringIO
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import normalize_mac, validate_ifname

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    # interface_info's record: type, mac, bridge, network, model, target (callers add view, tap, bridge_state).
    InterfaceInfo = dict[str, Optional[str]]

# QEMU/KVM's OUI: libvirt's own choice for generated guest MACs.
MAC_PREFIX = "52:54:00"
DEFAULT_MODEL = "virtio"
# Device XML indentation, as libvirt formats domain XML (two spaces a level;
# <domain> level 0, <devices> level 1, an <interface> level 2).
_INDENT = "  "
# libvirt's domain schema: <model type> is letters, digits, '-' and '_'.
_MODEL_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_MAC_HINT = "Or leave mac out to get one derived from the domain and the bridge."


# ---------------------------------------------------------------------------
# MAC addresses (the rules live in _names) and models


def check_model(model: object) -> str:
    """Return ``model`` when libvirt's schema accepts it as <model type>; raise ModuleError otherwise."""
    if not isinstance(model, str) or not _MODEL_RE.match(model):
        raise ModuleError(
            "model %r is not a libvirt NIC model: use letters, digits, '-' and '_' only (at most 64), for example virtio, e1000e or rtl8139." % (model,)
        )
    return model


def derive_mac(domain: str, bridge: str) -> str:
    """52:54:00 and three octets of SHA-256("<domain>\\n<bridge>"): the same MAC on every run."""
    digest = hashlib.sha256(("%s\n%s" % (domain, bridge)).encode("utf-8")).hexdigest()
    return "%s:%s:%s:%s" % (MAC_PREFIX, digest[0:2], digest[2:4], digest[4:6])


def uri_is_local(uri: str | None) -> bool:
    """True when the URI names a hypervisor on the host the module runs on (no host name in it)."""
    return not urlsplit(uri or "").netloc


# ---------------------------------------------------------------------------
# Domain XML (xml.etree.ElementTree; never string edits)


# The XML parsed here is libvirt's own output (XMLDesc) or this module's. The
# standard library parser never fetches external entities, and expat >= 2.4.1
# (every supported Python) limits entity expansion; defusedxml is not
# available on managed hosts.


def _register_namespaces(text: str) -> None:
    """Keep the document's namespace prefixes (qemu:, metadata apps) when ElementTree writes it back."""
    try:
        for _event, (prefix, uri) in ET.iterparse(StringIO(text), events=("start-ns",)):  # noqa: S314
            if prefix:
                with contextlib.suppress(ValueError):  # prefixes like ns0 are ElementTree's own
                    ET.register_namespace(prefix, uri)
    except ET.ParseError:
        pass  # reported by the real parse


def parse_xml(text: str, what: str = "domain XML") -> ET.Element:
    """The root element of libvirt's XML ``text``; ModuleError naming ``what`` when it does not parse."""
    _register_namespaces(text)
    try:
        return ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise ModuleError("libvirt returned %s that does not parse: %s" % (what, exc)) from None


def element_text(elem: ET.Element) -> str:
    """An element (and its children) as XML text, as libvirt takes it."""
    return ET.tostring(elem, encoding="unicode")


def interface_info(elem: ET.Element) -> InterfaceInfo:
    """A plain dict of one <interface> element."""

    def attr(path: str, name: str) -> str | None:
        child = elem.find(path)
        return child.get(name) if child is not None else None

    kind = elem.get("type")
    return {
        "type": kind,
        "mac": (attr("mac", "address") or "").lower() or None,
        "bridge": attr("source", "bridge") if kind in ("bridge", "network") else None,
        "network": attr("source", "network") if kind == "network" else None,
        "model": attr("model", "type"),
        "target": attr("target", "dev"),
    }


def interfaces_of(xml_text: str) -> list[InterfaceInfo]:
    """Every <interface> of a domain XML as dicts (type, mac, bridge, network, model, target).

    For type='network' the bridge is only known in live XML (libvirt adds it there).
    """
    root = parse_xml(xml_text)
    return [interface_info(elem) for elem in root.findall("./devices/interface")]


def insert_child(parent: ET.Element, index: int, child: ET.Element, level: int) -> None:
    """Insert ``child`` into ``parent`` (at nesting ``level``) keeping libvirt's indentation."""
    inner = "\n" + _INDENT * (level + 1)
    children = list(parent)
    if not children:
        child.tail = parent.text if parent.text and not parent.text.strip() else "\n" + _INDENT * level
        parent.text = inner
    elif index >= len(children):
        child.tail = children[-1].tail
        children[-1].tail = inner
    else:
        child.tail = inner
        if index == 0:
            parent.text = inner
        else:
            children[index - 1].tail = inner
    parent.insert(index, child)


def remove_child(parent: ET.Element, child: ET.Element) -> None:
    """Remove ``child`` from ``parent``; the closing tag keeps its indentation."""
    children = list(parent)
    index = children.index(child)
    if index == len(children) - 1:
        if index == 0:
            parent.text = child.tail
        else:
            children[index - 1].tail = child.tail
    parent.remove(child)


class DomainXML:
    """One domain definition (live or persistent) as an ElementTree, edited in place."""

    def __init__(self, text: str) -> None:
        self.original = text
        self.root = parse_xml(text)
        devices = self.root.find("devices")
        if devices is None:
            devices = ET.SubElement(self.root, "devices")
        self.devices = devices

    @property
    def name(self) -> str | None:
        return self.root.findtext("name")

    def interfaces(self) -> list[ET.Element]:
        return self.devices.findall("interface")

    def by_mac(self, mac: str | None) -> ET.Element | None:
        for elem in self.interfaces():
            if interface_info(elem)["mac"] == mac:
                return elem
        return None

    def on_bridge(self, bridge: str, model: str | None = None) -> list[ET.Element]:
        """Interfaces of type bridge on ``bridge`` (with ``model``, when given), in document order."""
        found = []
        for elem in self.interfaces():
            info = interface_info(elem)
            if info["type"] == "bridge" and info["bridge"] == bridge and (model is None or info["model"] == model):
                found.append(elem)
        return found

    def add(self, elem: ET.Element) -> None:
        """Insert an interface after the last one (or at the end of <devices>), indented like libvirt."""
        index = len(self.devices)
        for pos, child in enumerate(self.devices):
            if child.tag == "interface":
                index = pos + 1
        ET.indent(elem, space=_INDENT, level=2)
        insert_child(self.devices, index, elem, level=1)

    def remove(self, elem: ET.Element) -> None:
        remove_child(self.devices, elem)

    def to_string(self) -> str:
        return element_text(self.root)


def new_interface(mac: str, bridge: str, model: str) -> ET.Element:
    """<interface type='bridge'><mac/><source bridge/><model/></interface>."""
    elem = ET.Element("interface", {"type": "bridge"})
    ET.SubElement(elem, "mac", {"address": mac})
    ET.SubElement(elem, "source", {"bridge": bridge})
    ET.SubElement(elem, "model", {"type": model})
    return elem


def retarget_interface(elem: ET.Element, bridge: str, model: str | None) -> list[str]:
    """Make an existing interface type='bridge' on ``bridge`` (and ``model``, when given).

    Everything else (target, alias, PCI address, driver, bandwidth, ...) stays.
    Returns the names of the properties that changed.
    """
    changed = []
    info = interface_info(elem)
    if info["type"] != "bridge":
        elem.set("type", "bridge")
        changed.append("type")
    source = elem.find("source")
    if source is None:
        mac = elem.find("mac")
        source = ET.Element("source")
        insert_child(elem, list(elem).index(mac) + 1 if mac is not None else 0, source, level=2)
    if dict(source.attrib) != {"bridge": bridge}:
        if info["bridge"] != bridge:
            changed.append("bridge")
        # A type='network' source (network, portgroup, portid) has no meaning on a bridge.
        source.attrib.clear()
        source.set("bridge", bridge)
    if model is not None and info["model"] != model:
        node = elem.find("model")
        if node is None:
            node = ET.Element("model")
            insert_child(elem, len(elem), node, level=2)
        node.attrib.clear()
        node.set("type", model)
        changed.append("model")
    return changed


def redact(xml_text: str) -> str:
    """The XML as shown in diffs: same formatting in every mode, without passwords (graphics passwd)."""
    root = parse_xml(xml_text)
    for elem in root.iter():
        if "passwd" in elem.attrib:
            del elem.attrib["passwd"]
    return element_text(root) + "\n"


# ---------------------------------------------------------------------------
# The plan


class Desired:
    """What the task asks for; ``mac`` and ``model`` are None when not given."""

    def __init__(self, domain: str, bridge: object, state: str = "present", mac: object = None, model: object = None) -> None:
        self.domain = domain
        self.bridge = validate_ifname(bridge, "bridge")
        self.state = state
        self.mac = normalize_mac(mac, "mac", hint=_MAC_HINT) if mac else None
        self.model = check_model(model) if model else None


def choose_mac(desired: Desired, views: Mapping[str, DomainXML]) -> tuple[str | None, str]:
    """The MAC of the interface the task is about, and how it was chosen.

    Given MAC > the derived MAC when an interface has it > an interface already
    on the bridge (with the model, when given; the persistent view first) >
    the derived MAC for a new interface.
    """
    if desired.mac:
        return desired.mac, "given"
    derived = derive_mac(desired.domain, desired.bridge)
    for view in views.values():
        if view.by_mac(derived) is not None:
            return derived, "derived"
    for view in views.values():
        found = view.on_bridge(desired.bridge, desired.model)
        if found:
            return interface_info(found[0])["mac"], "found on the bridge"
    return derived, "derived"


class Change:
    """One change to one view (``config`` or ``live``) of the domain."""

    def __init__(
        self, view: str, action: str, before: InterfaceInfo | None, after: InterfaceInfo | None, element: ET.Element, properties: Iterable[str] = ()
    ) -> None:
        self.view = view
        self.action = action  # add, update, remove
        self.before = before
        self.after = after
        self.element = element  # the device XML to hand to libvirt
        self.properties = list(properties)

    @property
    def mac(self) -> str | None:
        info = self.after if self.after is not None else self.before
        return info["mac"] if info is not None else None

    def brings_mac_to(self, bridge: str) -> bool:
        """True when, after this change, the MAC is on ``bridge`` and was not before."""
        if self.action == "remove" or self.after is None or self.after["bridge"] != bridge:
            return False
        return self.before is None or self.before["bridge"] != bridge or self.before["mac"] != self.after["mac"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "action": self.action,
            "mac": self.mac,
            "changed": self.properties,
            "before": self.before,
            "after": self.after,
        }

    def describe(self) -> str:
        if self.action == "update":
            return "%s: update interface %s (%s)" % (self.view, self.mac, ", ".join(self.properties))
        return "%s: %s interface %s" % (self.view, self.action, self.mac)


def plan_interface(desired: Desired, views: Mapping[str, DomainXML]) -> tuple[str | None, list[Change]]:
    """Edit the views (name -> DomainXML, edited in place) to the desired state.

    Returns (mac, changes). ``mac`` is the interface the task is about (None
    for state=absent without mac, which removes every match).
    """
    changes: list[Change] = []
    if desired.state == "absent":
        for name, view in views.items():
            if desired.mac:
                elem = view.by_mac(desired.mac)
                info = interface_info(elem) if elem is not None else None
                matches = [elem] if elem is not None and info and info["type"] == "bridge" and info["bridge"] == desired.bridge else []
                if info and desired.model and info["model"] != desired.model:
                    matches = []
            else:
                matches = view.on_bridge(desired.bridge, desired.model)
            for elem in matches:
                view.remove(elem)
                changes.append(Change(name, "remove", interface_info(elem), None, elem))
        return desired.mac, changes

    mac, _how = choose_mac(desired, views)
    for name, view in views.items():
        elem = view.by_mac(mac)
        if elem is None:
            if mac is None:  # chosen on the bridge from an interface without <mac>, which this view does not have
                raise ModuleError(
                    "domain %s has an interface on bridge %s without a MAC address (no <mac> element in its XML), which is "
                    "not in its %s definition; set mac to say which interface this task is about. Nothing was changed." % (desired.domain, desired.bridge, name)
                )
            elem = new_interface(mac, desired.bridge, desired.model or DEFAULT_MODEL)
            view.add(elem)
            changes.append(Change(name, "add", None, interface_info(elem), elem))
            continue
        before = interface_info(elem)
        properties = retarget_interface(elem, desired.bridge, desired.model)
        if properties:
            changes.append(Change(name, "update", before, interface_info(elem), elem, properties))
    return mac, changes


def find_mac_conflicts(mac: str | None, bridge: str, users: Iterable[tuple[str, str, str]]) -> list[str]:
    """Who else has ``mac`` on ``bridge``: ``users`` is a list of (who, mac, bridge)."""
    return sorted({who for who, user_mac, user_bridge in users if user_mac == mac and user_bridge == bridge})


# ---------------------------------------------------------------------------
# Network XML


def _ip_network(ip: ET.Element) -> str | None:
    """The subnet of a network's <ip> element (prefix, netmask, or libvirt's default for the address), or None."""
    address = ip.get("address")
    if not address:
        return None
    try:
        addr = ipaddress.ip_address(address)
        if ip.get("prefix"):
            size = ip.get("prefix")
        elif ip.get("netmask"):
            size = ip.get("netmask")
        elif addr.version == 6:
            size = "64"
        else:  # libvirt's default: the address class
            first = int(address.split(".", 1)[0])
            size = "8" if first < 128 else "16" if first < 192 else "24"
        return str(ipaddress.ip_interface("%s/%s" % (address, size)).network)
    except ValueError:
        return None


def network_info(xml_text: str, active: bool | None = None, autostart: bool | None = None) -> dict[str, Any]:
    """{network, bridge, forward, subnets, active, autostart} of a libvirt <network> XML.

    ``forward`` is libvirt's forward mode (``nat`` when <forward> has no mode, ``isolated`` without <forward>);
    ``subnets`` the networks of its <ip> elements, in CIDR notation.
    """
    root = parse_xml(xml_text, "network XML")
    forward = root.find("forward")
    bridge = root.find("bridge")
    subnets = [net for net in (_ip_network(ip) for ip in root.findall("ip")) if net]
    return {
        "network": (root.findtext("name") or "").strip() or None,
        "bridge": bridge.get("name") if bridge is not None else None,
        "forward": "isolated" if forward is None else forward.get("mode", "nat"),
        "subnets": subnets,
        "active": active,
        "autostart": autostart,
    }

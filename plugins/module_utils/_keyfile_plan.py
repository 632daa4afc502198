# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetworkManager keyfiles: module parameters -> the profile's keys -> a rewrite plan.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

Pure code, no I/O: ``build_request`` validates the nm_keyfile parameters up
front; ``plan`` takes the directory's files ({name: text}) and finds the
profile to write (by id, else an existing profile of the same NIC), rewrites
it key by key with the GKeyFile line model of _keyfile, and checks the result
with NetworkManager's own rules before anything is written.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils import _keyfile
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import normalize_mac, validate_ifname

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def validate_device(name: object, option: str) -> str:
    """An interface name as the kernel takes it (the collection's one validator, _names)."""
    return validate_ifname(name, option)


def validate_mac(mac: object, option: str) -> str:
    """A unicast MAC written with colons (the collection's one validator, _names)."""
    return normalize_mac(mac, option, separators=":", strip=False)


PORT_KEYS = ("master", "slave-type", "controller", "port-type")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_ADDRESS_KEY_RE = re.compile(r"(?:address|addresses)[0-9]*\Z")
_SECTION_RE = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

# Keys that options write; settings may not set them.
_OPTION_KEYS = {
    ("connection", "id"): "name",
    ("connection", "uuid"): "uuid",
    ("connection", "type"): "type",
    ("connection", "interface-name"): "interface",
    ("connection", "autoconnect"): "autoconnect",
    ("connection", "master"): "controller",
    ("connection", "slave-type"): "controller",
    ("connection", "controller"): "controller",
    ("connection", "port-type"): "controller",
    ("ethernet", "mac-address"): "mac_address",
    ("ethernet", "cloned-mac-address"): "cloned_mac_address",
    ("bridge", "stp"): "stp",
    ("bridge", "forward-delay"): "forward_delay",
}
for _family in ("ipv4", "ipv6"):
    for _key in ("method", "gateway", "dns"):
        _OPTION_KEYS[(_family, _key)] = "%s.%s" % (_family, _key)


# ---------------------------------------------------------------------------
# Validation


def validate_name(name: object) -> str:
    """A profile name that is its own file name and that NetworkManager does not skip."""
    if not isinstance(name, str) or not name.strip():
        raise ModuleError("name must not be empty.")
    problems = []
    if "/" in name:
        problems.append("it contains / (NetworkManager would store it as %s)" % _keyfile.file_name_for(name))
    if name.startswith("."):
        problems.append("it starts with . (NetworkManager ignores hidden files)")
    if name.endswith("~"):
        problems.append("it ends with ~ (NetworkManager ignores backup files)")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        problems.append("it contains a control character")
    if len((name + _keyfile.SUFFIX).encode("utf-8", "surrogatepass")) > 255:
        problems.append("the file name %s would be longer than 255 bytes" % (name + _keyfile.SUFFIX))
    if problems:
        raise ModuleError("name %r cannot be a profile name: %s. Choose a name without these characters." % (name, "; ".join(problems)))
    return name


def validate_ip(text: object, family: int, option: str) -> str:
    """An interface address with prefix length of the given family (4 or 6)."""
    label = "IPv4" if family == 4 else "IPv6"
    try:
        iface = ipaddress.ip_interface(text.strip()) if isinstance(text, str) and "/" in text else None
    except ValueError as exc:
        raise ModuleError("%s: %r is not an %s address with a prefix length: %s." % (option, text, label, exc)) from exc
    if iface is None:
        raise ModuleError("%s: %r needs a prefix length, like %s." % (option, text, "198.18.5.10/24" if family == 4 else "2001:db8::5/64"))
    if iface.version != family:
        raise ModuleError("%s: %s is not an %s address; put it under %s." % (option, text, label, "ipv6" if family == 4 else "ipv4"))
    if iface.network.prefixlen == 0:
        raise ModuleError("%s: %s has prefix length 0; give the subnet's real prefix length." % (option, text))
    address = iface.ip
    if address.is_multicast or address.is_unspecified or address.is_loopback:
        raise ModuleError("%s: %s cannot be an interface address (multicast, unspecified or loopback)." % (option, text))
    if family == 4 and iface.network.prefixlen <= 30 and address in (iface.network.network_address, iface.network.broadcast_address):
        raise ModuleError("%s: %s is the network or broadcast address of %s; give a host address." % (option, text, iface.network))
    return "%s/%d" % (address, iface.network.prefixlen)


def validate_host(text: Any, family: int, option: str) -> str:
    """An IP address of the family (0: either); ``text`` is a raw parameter value, anything but a str is refused."""
    try:
        address = ipaddress.ip_address(text.strip())
    except (ValueError, AttributeError) as exc:
        raise ModuleError("%s: %r is not an IP address." % (option, text)) from exc
    if family and address.version != family:
        raise ModuleError("%s: %s is not an IPv%d address." % (option, text, family))
    if address.is_multicast or address.is_unspecified:
        raise ModuleError("%s: %s cannot be used here (multicast or unspecified)." % (option, text))
    return str(address)


def check_value(value: str, where: str) -> str:
    """Refuse what no keyfile can hold: a NUL byte, a leading vertical tab or form feed (GLib strips them, no escape exists)."""
    if "\0" in value:
        raise ModuleError("%s: the value contains a NUL byte, which a keyfile cannot hold." % where)
    if value.lstrip(" \t")[:1] in ("\v", "\f"):
        raise ModuleError("%s: the value starts with a vertical tab or form feed, which GLib's key files cannot keep." % where)
    return value


def _setting_raw(section: str, key: str, value: object) -> str:
    where = "settings.%s.%s" % (section, key)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        check_value(value, where)
        return _keyfile.escape(value)
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise ModuleError("%s: list items must be strings or numbers." % where)
            items.append(check_value(str(item), where))
        return _keyfile.escape_list(items)
    raise ModuleError("%s: give a string, number, boolean or list (or null to remove the key), not %s." % (where, type(value).__name__))


# ---------------------------------------------------------------------------
# The request


class Request:
    """Validated parameters: the profile's name and the key operations to apply."""

    def __init__(
        self, name: str, kind: str | None = None, interface: str | None = None, uuid: str | None = None, adopt: bool = True, mac: str | None = None
    ) -> None:
        self.name = name
        self.kind = kind
        self.interface = interface
        self.uuid = uuid
        self.adopt = adopt
        self.mac = mac
        self.port = False
        self.ops: list[tuple[str, str, str | None]] = []  # (section, key, raw or None); section names as NetworkManager writes them
        self.remove_sections: list[str] = []
        self.owned: list[tuple[str, re.Pattern[str]]] = []  # (section, regex): keys of the family not set by ops are removed
        self.warnings: list[str] = []

    def set(self, section: str, key: str, raw: str | None) -> None:
        self.ops.append((section, key, raw))


def _ip_ops(request: Request, family: int, params: Mapping[str, Any] | None) -> None:
    section = "ipv%d" % family
    if params is None:
        return
    method = params.get("method")
    addresses = params.get("addresses")
    gateway = params.get("gateway")
    dns = params.get("dns")
    if addresses is not None:
        cleaned = [validate_ip(text, family, "%s.addresses" % section) for text in addresses]
        if len(set(cleaned)) != len(cleaned):
            raise ModuleError("%s.addresses lists the same address twice." % section)
        if method in ("disabled", "link-local", "ignore") and cleaned:
            raise ModuleError("%s.addresses: NetworkManager refuses addresses with method %s; use method manual or auto." % (section, method))
        request.owned.append((section, _ADDRESS_KEY_RE))
        for index, address in enumerate(cleaned, start=1):
            request.set(section, "address%d" % index, address)
    if method == "manual" and not addresses:
        raise ModuleError("%s.method manual needs %s.addresses, like [%s]." % (section, section, "198.18.5.10/24" if family == 4 else "2001:db8::5/64"))
    if method is not None:
        request.set(section, "method", method)
    if gateway is not None:
        if gateway == "":
            request.set(section, "gateway", None)
        else:
            request.set(section, "gateway", validate_host(gateway, family, "%s.gateway" % section))
    if dns is not None:
        servers = [validate_host(text, family, "%s.dns" % section) for text in dns]
        if method in ("disabled", "link-local", "ignore") and servers:
            raise ModuleError("%s.dns: NetworkManager refuses DNS servers with method %s; use method manual or auto." % (section, method))
        request.set(section, "dns", _keyfile.escape_list(servers) if servers else None)


def build_request(params: Mapping[str, Any]) -> Request:
    """Validate the parameters of nm_keyfile (state=present) and build the key operations.

    Raises ModuleError for the first problem; nothing has been read or written then.
    """
    name = validate_name(params.get("name"))
    kind = params.get("type")
    if kind not in ("bridge", "ethernet"):
        raise ModuleError("type must be bridge or ethernet, not %r." % (kind,))
    interface = validate_device(params.get("interface"), "interface")
    uuid = params.get("uuid")
    if uuid is not None and not _UUID_RE.match(uuid):
        raise ModuleError("uuid %r is not a uuid; write it like 5f7b6c1e-2f1a-4f55-9a57-3e1d2c0b9a10, or leave it out." % uuid)
    mac = params.get("mac_address")
    if mac is not None:
        mac = validate_mac(mac, "mac_address").upper()
    request = Request(name, kind, interface, uuid.lower() if uuid else None, params.get("adopt", True), mac)
    request.port = _check_port(params, kind, interface)
    _check_bridge_timers(params, kind)
    _option_ops(request, params, kind, interface, mac)
    _settings_ops(request, params, kind)
    return request


def _check_port(params: Mapping[str, Any], kind: str, interface: str) -> bool:
    """Whether the profile is a bridge port (``controller``): an ethernet profile, of another device, without IP settings."""
    controller = params.get("controller")
    if controller is None:
        return False
    validate_device(controller, "controller")
    if kind != "ethernet":
        raise ModuleError("controller applies to ethernet profiles (a bridge port); a %s cannot be a port of %s." % (kind, controller))
    if controller == interface:
        raise ModuleError("controller %s names the interface itself; a port must name the bridge it joins." % controller)
    sections = (("ipv4", params.get("ipv4")), ("ipv6", params.get("ipv6")))
    given = [section for section, value in sections if value and any(v is not None for v in value.values())]
    if given:
        raise ModuleError(
            "%s is a port of %s: NetworkManager gives a port no IP configuration, so %s would have no effect. "
            "Put the addresses on the bridge's profile." % (interface, controller, " and ".join(given))
        )
    return True


def _check_bridge_timers(params: Mapping[str, Any], kind: str) -> None:
    """stp and forward_delay belong to a bridge, and forward_delay to what NetworkManager and the kernel accept."""
    stp = params.get("stp")
    forward_delay = params.get("forward_delay")
    if kind != "bridge" and (stp is not None or forward_delay is not None):
        raise ModuleError("stp and forward_delay apply to bridges (type: bridge), not to an ethernet profile.")
    if forward_delay is not None and not (forward_delay == 0 or 2 <= forward_delay <= 30):
        raise ModuleError("forward_delay %d is out of range: NetworkManager accepts 2 to 30 seconds, or 0." % forward_delay)
    if stp and forward_delay == 0:
        raise ModuleError("forward_delay 0 needs stp: false; with STP on, the kernel needs a forward delay of 2 to 30 seconds.")


def _option_ops(request: Request, params: Mapping[str, Any], kind: str, interface: str, mac: str | None) -> None:
    """The key operations of the module's own options."""
    controller = params.get("controller")
    stp = params.get("stp")
    forward_delay = params.get("forward_delay")
    request.set("connection", "id", None)  # placeholder, resolved in plan (an adopted profile keeps its id)
    request.ops.pop()
    request.set("connection", "type", kind)
    request.set("connection", "interface-name", interface)
    if params.get("autoconnect") is not None:
        request.set("connection", "autoconnect", "true" if params["autoconnect"] else "false")
    if controller is not None:
        for key, value in (("master", controller), ("slave-type", "bridge"), ("controller", controller), ("port-type", "bridge")):
            request.set("connection", key, value)
        request.remove_sections += ["ipv4", "ipv6"]
    else:
        for key in PORT_KEYS:
            request.set("connection", key, None)
    if mac is not None:
        request.set("ethernet", "mac-address", mac)
    cloned = params.get("cloned_mac_address")
    if cloned is not None:
        if cloned in _keyfile.CLONED_SPECIAL:
            request.set("ethernet", "cloned-mac-address", cloned)
        else:
            request.set("ethernet", "cloned-mac-address", validate_mac(cloned, "cloned_mac_address").upper())
    if stp is not None:
        request.set("bridge", "stp", "true" if stp else "false")
    if forward_delay is not None:
        request.set("bridge", "forward-delay", str(forward_delay))
    _ip_ops(request, 4, params.get("ipv4"))
    _ip_ops(request, 6, params.get("ipv6"))


def _settings_ops(request: Request, params: Mapping[str, Any], kind: str) -> None:
    """The key operations of ``settings``; a key that an option writes, or that is set twice, is refused."""
    from_options = {(section, key) for section, key, _raw in request.ops}
    settings = params.get("settings") or {}
    if not isinstance(settings, dict):
        raise ModuleError("settings must be a dict of sections, like {bridge: {multicast-snooping: false}}.")
    for section, values in settings.items():
        if not isinstance(section, str) or not _SECTION_RE.match(section):
            raise ModuleError("settings: %r is not a section name (lowercase letters, digits and -, like bridge-port)." % (section,))
        section = _keyfile.short_group(section)
        if values is None:
            if section in ("connection",) or (section in ("ethernet", "bridge") and section == kind):
                raise ModuleError("settings.%s: the [%s] section cannot be removed; this profile needs it." % (section, section))
            request.remove_sections.append(section)
            continue
        if not isinstance(values, dict):
            raise ModuleError("settings.%s must be a dict of keys, or null to remove the section." % section)
        for key, value in values.items():
            _check_setting_key(request, section, key, value, from_options)
            request.set(section, key, None if value is None else _setting_raw(section, key, value))


def _check_setting_key(request: Request, section: str, key: object, value: object, from_options: set[tuple[str, str]]) -> None:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ModuleError("settings.%s: %r is not a key name (letters, digits, -, _ and .)." % (section, key))
    option = _OPTION_KEYS.get((section, key))
    if option is None and section in ("ipv4", "ipv6") and _ADDRESS_KEY_RE.match(key):
        option = "%s.addresses" % section
    if option is not None:
        raise ModuleError("settings.%s.%s is written from the %s option; set it there." % (section, key, option))
    if (section, key) in from_options:
        raise ModuleError("settings.%s.%s is set twice." % (section, key))
    if request.port and section in ("ipv4", "ipv6") and value is not None:
        raise ModuleError("settings.%s.%s: a bridge port has no IP configuration." % (section, key))


# ---------------------------------------------------------------------------
# Finding the profile


def _profiles(files: Mapping[str, str], before_1_46: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """[(file name, profile)] of the files NetworkManager reads, in name order."""
    found: list[tuple[str, dict[str, Any]]] = []
    for file_name in sorted(files):
        if _keyfile.ignored_name(file_name):
            continue
        found.append((file_name, _keyfile.read_profile(files[file_name], file_name, before_1_46)))
    return found


def _owns(profile: Mapping[str, Any], kind: str | None, interface: str | None, macs: set[str]) -> bool:
    """Whether a profile of this type applies to the interface (by interface-name, or an ethernet one by its MAC)."""
    if profile["type"] != kind:
        return False
    interface_name: str | None = profile["interface_name"]
    if interface_name or kind != "ethernet":
        return interface_name == interface
    return bool(profile["mac_address"]) and profile["mac_address"] in macs


def find_target(files: Mapping[str, str], request: Request, nic_mac: str | None = None) -> tuple[str | None, bool, list[str]]:
    """(file name or None, adopted, other files of the interface) for the request.

    The profile whose id is the name wins. Else, with adopt, the one ethernet
    profile of the interface (interface-name, or mac-address equal to the
    requested MAC or the NIC's own). Several candidates are an error.
    """
    profiles = _profiles(files)
    by_id = [file_name for file_name, profile in profiles if profile["id"] == request.name]
    if len(by_id) > 1:
        raise ModuleError(
            "Several files in the profile directory hold a profile named %r: %s. NetworkManager loads all of them; "
            "remove all but one." % (request.name, ", ".join(by_id))
        )
    macs = {mac.upper() for mac in (request.mac, nic_mac) if mac}
    owners = [file_name for file_name, profile in profiles if _owns(profile, request.kind, request.interface, macs)]
    if by_id:
        return by_id[0], False, [name for name in owners if name != by_id[0]]
    if request.adopt and owners and request.kind == "ethernet":
        if len(owners) > 1:
            ids = ["%s (%s)" % (name, dict(profiles)[name]["id"]) for name in owners]
            raise ModuleError(
                "Several profiles apply to %s: %s. Choose the one to turn into this profile by giving its id as name, "
                "or remove the others." % (request.interface, ", ".join(ids))
            )
        return owners[0], True, []
    file_name = _keyfile.file_name_for(request.name)
    if file_name in files:
        other = _keyfile.read_profile(files[file_name], file_name)["id"]
        raise ModuleError(
            "%s already exists and holds the profile %r, not %r. Give that name, or remove or rename the file." % (file_name, other, request.name)
        )
    return None, False, owners


# ---------------------------------------------------------------------------
# The rewrite plan


class Change:
    __slots__ = ("action", "after", "before", "key", "section")

    def __init__(self, section: str, key: str | None, action: str, before: str | None = None, after: str | None = None) -> None:
        self.section = section
        self.key = key
        self.action = action
        self.before = before
        self.after = after

    def as_dict(self) -> dict[str, str | None]:
        return {"section": self.section, "key": self.key, "action": self.action, "before": self.before, "after": self.after}

    @property
    def label(self) -> str:
        return self.section if self.key is None else "%s.%s" % (self.section, self.key)


class Plan:
    def __init__(
        self,
        file_name: str,
        before: str | None,
        after: str,
        changes: list[Change],
        profile: dict[str, Any],
        adopted: bool = False,
        others: Iterable[str] = (),
    ) -> None:
        self.file_name = file_name
        self.before = before
        self.after = after
        self.changes = changes
        self.profile = profile
        self.adopted = adopted
        self.others = list(others)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def changed_keys(self) -> list[str]:
        return list(dict.fromkeys(change.label for change in self.changes))  # in order, once each


def _group_for(keyfile: _keyfile.KeyFile, section: str) -> str:
    """The group that holds a setting in this file: an existing alias (``802-3-ethernet``) or the short name."""
    setting = _keyfile.setting_name(section)
    present = [group for group in keyfile.groups() if _keyfile.setting_name(group) == setting]
    return present[-1] if present else section


def _same(section: str, key: str, raw_before: str | None, raw_after: str | None) -> bool:
    """Whether two raw values read the same in NetworkManager (so nothing needs rewriting)."""
    if raw_before == raw_after:
        return True
    if raw_before is None or raw_after is None:
        return False
    before = _keyfile.decode(raw_before)
    after = _keyfile.decode(raw_after)
    if before is None:
        return False
    if (section, key) == ("connection", "type"):
        return after is not None and _keyfile.setting_name(before) == _keyfile.setting_name(after)
    if key in ("mac-address", "cloned-mac-address"):
        special = _keyfile.CLONED_SPECIAL
        return _keyfile.parse_mac(before, special) is not None and _keyfile.parse_mac(before, special) == _keyfile.parse_mac(after, special)
    if after in ("true", "false"):
        return _keyfile.parse_bool(before) == (after == "true")
    return False


def verify(profile: Mapping[str, Any], request: Request) -> None:
    """NetworkManager's own checks on the result (it would refuse the profile otherwise)."""
    problems = list(profile["errors"])
    if profile["type"] != request.kind:
        problems.append("type is %s, not %s" % (profile["type"], request.kind))
    for family in ("ipv4", "ipv6"):
        settings = profile[family]
        if not settings:
            continue
        method = settings["method"]
        if method == "manual" and not settings["addresses"]:
            problems.append("%s.method manual needs addresses" % family)
        if method in ("disabled", "link-local", "ignore") and settings["addresses"]:
            problems.append("%s has addresses, which NetworkManager refuses with method %s" % (family, method))
        if method in ("disabled", "link-local", "ignore") and settings["dns"]:
            problems.append("%s has DNS servers, which NetworkManager refuses with method %s (remove them with dns: [])" % (family, method))
        if settings["gateway"] and not settings["addresses"]:
            problems.append("%s.gateway needs an address (NetworkManager: gateway cannot be set if there are no addresses configured)" % family)
    if problems:
        raise ModuleError(
            "The profile would not load in NetworkManager: %s. Fix the options (or the existing file); nothing was changed." % "; ".join(problems)
        )


def plan(files: Mapping[str, str], request: Request, new_uuid: str, nic_mac: str | None = None) -> Plan:
    """Plan the profile's file.

    ``files``: {file name: text} of the profile directory. ``new_uuid``: the
    uuid for a profile that has none. ``nic_mac``: the interface's own MAC,
    used to find its existing profile. Returns a Plan.
    """
    file_name, adopted, others = find_target(files, request, nic_mac)
    before = files.get(file_name) if file_name else None
    keyfile = _keyfile.KeyFile.parse(before or "")
    if keyfile.errors:
        raise ModuleError(
            "%s cannot be read as a keyfile (%s); NetworkManager ignores it as well. Fix or remove the file first." % (file_name, "; ".join(keyfile.errors))
        )
    if file_name is None:
        file_name = _keyfile.file_name_for(request.name)
    current = _keyfile.read_profile(before or "", file_name)
    changes: list[Change] = []

    def apply(section: str, key: str, raw: str | None) -> None:
        group = _group_for(keyfile, section)
        old = keyfile.raw(group, key)
        if raw is None:
            if old is not None and keyfile.remove(group, key):
                changes.append(Change(section, key, "remove", before=old))
            return
        if old is not None and _same(section, key, old, raw):
            return
        keyfile.set_raw(group, key, raw)
        changes.append(Change(section, key, "add" if old is None else "set", before=old, after=raw))

    profile_id = current["id"] if adopted or before is not None else request.name
    if keyfile.raw("connection", "id") is None:
        apply("connection", "id", _keyfile.escape(profile_id))
    uuid = request.uuid or current["uuid"] or new_uuid
    if current["uuid"] is None or (request.uuid and request.uuid != (current["uuid"] or "").lower()):
        apply("connection", "uuid", uuid)
    for section, key, raw in request.ops:
        apply(section, key, raw)
    set_keys = {(section, key) for section, key, raw in request.ops if raw is not None}
    for section, regex in request.owned:
        group = _group_for(keyfile, section)
        for key in list(keyfile.raw_items(group)):
            if regex.match(key) and (section, key) not in set_keys:
                apply(section, key, None)
    for section in request.remove_sections:
        group = _group_for(keyfile, section)
        if keyfile.has_group(group):
            for key, raw in keyfile.raw_items(group).items():
                changes.append(Change(section, key, "remove", before=raw))
            keyfile.remove_group(group)
    after = keyfile.render()
    if before is not None and not changes:
        after = before
    profile = _keyfile.read_profile(after, file_name)
    verify(profile, request)
    return Plan(file_name, before, after, changes, profile, adopted, others)


def plan_remove(files: Mapping[str, str], name: object) -> tuple[str | None, str | None]:
    """(file name or None, before text) of the profile named ``name``, for state=absent."""
    validate_name(name)
    matches = [file_name for file_name, profile in _profiles(files) if profile["id"] == name]
    if len(matches) > 1:
        raise ModuleError("Several files hold a profile named %r: %s; remove them one by one by hand." % (name, ", ".join(matches)))
    if matches:
        return matches[0], files[matches[0]]
    return None, None

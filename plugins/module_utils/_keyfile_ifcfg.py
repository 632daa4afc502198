# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ifcfg profile -> NetworkManager keyfile, for the migration off ifcfg (bridges, bridge ports, plain NICs).

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

Pure code, no I/O. ``convert(variables, path)`` takes what the collection's
ifcfg reader returns for one file (``_ifcfg.parse`` / ifcfg_info's
``variables``: {KEY: value}, values as NetworkManager reads them) and gives
the keyfile that NetworkManager's ifcfg-rh plugin would turn it into: the same
id (NAME, else "System DEVICE"), the same uuid (UUID, else the one ifcfg-rh
derives from the file's path), the interface, autoconnect, MACs, the IPv4 and
IPv6 configuration, the bridge's STP, forward delay and BRIDGING_OPTS, and a
port's controller with both spellings of the port keys.

Keys that have no equivalent here are returned as ``unconverted`` (never
silently dropped), so the caller can refuse or report them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils import _keyfile
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Union

    # One keyfile group: {key: value}, a list value for a list key (dns). A
    # runtime expression as far as pylint knows, so Union rather than |.
    Group = dict[str, Union[str, list[str]]]

# BRIDGING_OPTS names (sysfs) -> keyfile keys, as ifcfg-rh's reader maps them.
BRIDGE_OPTS = {
    "priority": ("priority", "int"),
    "hello_time": ("hello-time", "int"),
    "max_age": ("max-age", "int"),
    "ageing_time": ("ageing-time", "int"),
    "forward_delay": ("forward-delay", "int"),
    "group_address": ("group-address", "mac"),
    "group_fwd_mask": ("group-forward-mask", "int"),
    "hash_elasticity": ("multicast-hash-elasticity", "int"),
    "hash_max": ("multicast-hash-max", "int"),
    "multicast_last_member_count": ("multicast-last-member-count", "int"),
    "multicast_last_member_interval": ("multicast-last-member-interval", "int"),
    "multicast_membership_interval": ("multicast-membership-interval", "int"),
    "multicast_querier": ("multicast-querier", "bool"),
    "multicast_querier_interval": ("multicast-querier-interval", "int"),
    "multicast_query_interval": ("multicast-query-interval", "int"),
    "multicast_query_response_interval": ("multicast-query-response-interval", "int"),
    "multicast_query_use_ifaddr": ("multicast-query-use-ifaddr", "bool"),
    "multicast_router": ("multicast-router", "str"),
    "multicast_snooping": ("multicast-snooping", "bool"),
    "multicast_startup_query_count": ("multicast-startup-query-count", "int"),
    "multicast_startup_query_interval": ("multicast-startup-query-interval", "int"),
    "vlan_filtering": ("vlan-filtering", "bool"),
    "default_pvid": ("vlan-default-pvid", "int"),
    "vlan_protocol": ("vlan-protocol", "str"),
    "vlan_stats_enabled": ("vlan-stats-enabled", "bool"),
}
PORT_OPTS = {
    "priority": ("priority", "int"),
    "path_cost": ("path-cost", "int"),
    "hairpin_mode": ("hairpin-mode", "bool"),
}

# Keys that carry nothing NetworkManager needs, or whose meaning the conversion covers.
_CONSUMED = frozenset(
    (
        "DEVICE", "NAME", "UUID", "TYPE", "ONBOOT", "BRIDGE", "BRIDGING_OPTS", "STP", "DELAY", "HWADDR", "MACADDR", "MTU",
        "BOOTPROTO", "GATEWAY", "DEFROUTE", "PEERDNS", "IPV6INIT", "IPV6_AUTOCONF", "IPV6ADDR", "IPV6ADDR_SECONDARIES",
        "IPV6_DEFAULTGW", "IPV6_DISABLED", "ZONE", "NM_CONTROLLED", "USERCTL", "PROXY_METHOD", "BROWSER_ONLY",
        "IPV4_FAILURE_FATAL", "IPV6_DEFROUTE", "IPV6_FAILURE_FATAL", "IPV6_ADDR_GEN_MODE", "PEERNTP", "HOTPLUG",
    )
)  # fmt: skip
_NUMBERED = re.compile(r"(?:IPADDR|PREFIX|NETMASK|DNS)[0-9]*\Z")

_TRUE = ("yes", "true", "y", "t", "1")
_FALSE = ("no", "false", "n", "f", "0")


def _bool(value: str | None, default: bool | None = None) -> bool | None:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE or lowered == "on":
        return True
    if lowered in _FALSE or lowered == "off":
        return False
    return default


def legacy_uuid(path: str) -> str:
    """The uuid ifcfg-rh gives a file without UUID=: the MD5 of its full path, written as a uuid."""
    digest = hashlib.md5(path.encode("utf-8", "surrogateescape")).hexdigest()  # noqa: S324 - NetworkManager's own scheme
    return "%s-%s-%s-%s-%s" % (digest[:8], digest[8:12], digest[12:16], digest[16:20], digest[20:])


def _ipv4_addresses(variables: Mapping[str, str]) -> list[str]:
    """[addr/prefix] from IPADDR/PREFIX/NETMASK and IPADDRn/PREFIXn/NETMASKn (n = 0..255, IPADDR before IPADDR0... as ifcfg-rh)."""
    found: list[str] = []
    suffixes = [""] + [str(n) for n in range(256)]
    for suffix in suffixes:
        address = variables.get("IPADDR" + suffix)
        if not address:
            continue
        prefix = variables.get("PREFIX" + suffix)
        netmask = variables.get("NETMASK" + suffix)
        try:
            if prefix:
                iface = ipaddress.IPv4Interface("%s/%s" % (address.strip(), prefix.strip()))
            elif netmask:
                iface = ipaddress.IPv4Interface("%s/%s" % (address.strip(), netmask.strip()))
            else:
                iface = ipaddress.IPv4Interface("%s/24" % address.strip())
        except ValueError as exc:
            raise ModuleError("IPADDR%s=%s with PREFIX/NETMASK %s is not a valid address: %s." % (suffix, address, prefix or netmask, exc)) from exc
        text = "%s/%d" % (iface.ip, iface.network.prefixlen)
        if text not in found:
            found.append(text)
    return found


def _dns(variables: Mapping[str, str], family: int) -> list[str]:
    servers: list[str] = []
    for n in range(1, 100):
        value = variables.get("DNS%d" % n)
        if value is None:
            continue
        try:
            server = ipaddress.ip_address(value.strip())
        except ValueError:
            continue
        if server.version == family:
            servers.append(str(server))
    return servers


def _bridging_opts(text: str | None, table: Mapping[str, tuple[str, str]], where: str) -> tuple[Group, list[str]]:
    values: Group = {}
    unknown: list[str] = []
    for word in (text or "").split():
        name, _sep, value = word.partition("=")
        if name not in table or value == "":
            unknown.append(word)
            continue
        key, kind = table[name]
        if kind == "int":
            try:
                values[key] = str(int(value, 0))
            except ValueError:
                unknown.append(word)
        elif kind == "bool":
            flag = _bool(value)
            if flag is None:
                unknown.append(word)
            else:
                values[key] = "true" if flag else "false"
        elif kind == "mac":
            mac = _keyfile.parse_mac(value)
            if mac is None:
                unknown.append(word)
            else:
                values[key] = mac
        else:
            values[key] = value
    return values, ["%s %s" % (where, word) for word in unknown]


def convert(variables: Mapping[str, str | None], path: str) -> dict[str, Any]:
    """The keyfile equivalent of one ifcfg file.

    ``variables``: {KEY: value} as the ifcfg reader returns them (None for a
    badly quoted value). ``path``: the ifcfg file's path (its name gives the
    device when DEVICE= is missing, and the uuid when UUID= is missing).
    Returns {id, uuid, type, interface, file_name, groups, text, profile,
    unconverted, warnings}. Raises ModuleError for a profile that is not a
    bridge, a bridge port or an ethernet NIC.
    """
    device, kind, controller = _identity(variables, path)
    # _identity refused every None value (a badly quoted one), so the rest are strings.
    variables = cast("Mapping[str, str]", variables)
    warnings: list[str] = []
    unconverted: list[str] = []
    profile_id = variables.get("NAME") or "System %s" % device
    uuid = (variables.get("UUID") or "").strip().lower() or legacy_uuid(path)
    if not re.match(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z", uuid):
        raise ModuleError("%s: UUID=%s is not a uuid, and NetworkManager refuses the profile. Fix or remove UUID= first." % (path, uuid))

    groups: dict[str, Group] = {"connection": {"id": profile_id, "uuid": uuid, "type": kind, "interface-name": device}}
    connection = groups["connection"]
    onboot = _bool(variables.get("ONBOOT"), True)
    if not onboot:
        connection["autoconnect"] = "false"
    if variables.get("ZONE"):
        connection["zone"] = variables["ZONE"]
    if controller:
        connection.update({"master": controller, "slave-type": "bridge", "controller": controller, "port-type": "bridge"})
    if _bool(variables.get("NM_CONTROLLED"), True) is False:
        warnings.append("%s has NM_CONTROLLED=no: NetworkManager left %s alone; the keyfile hands it to NetworkManager." % (path, device))
    ethernet = _ethernet(variables, path, unconverted)
    if ethernet or kind == "ethernet":
        groups["ethernet"] = ethernet
    _bridge_groups(groups, variables, kind, controller, unconverted)
    if not controller:
        groups["ipv4"] = _ipv4(variables, path)
        groups["ipv6"] = _ipv6(variables, path)

    for key in variables:
        if key in _CONSUMED or _NUMBERED.match(key):
            continue
        unconverted.append(key)
    text = _keyfile.dumps(groups)
    profile = _keyfile.read_profile(text, _keyfile.file_name_for(profile_id))
    return {
        "id": profile_id,
        "uuid": uuid,
        "type": kind,
        "interface": device,
        "file_name": _keyfile.file_name_for(profile_id),
        "groups": groups,
        "text": text,
        "profile": profile,
        "unconverted": unconverted,
        "warnings": warnings,
    }


def _identity(variables: Mapping[str, str | None], path: str) -> tuple[str, str, str | None]:
    """(device, kind, controller) of the ifcfg file; ModuleError for what the migration does not convert."""
    bad = sorted(key for key, value in variables.items() if value is None)
    if bad:
        raise ModuleError("%s has badly quoted values (%s); NetworkManager ignores them. Fix them before migrating." % (path, ", ".join(bad)))
    file_name = path.rsplit("/", 1)[-1]
    device = variables.get("DEVICE") or (file_name[len("ifcfg-") :] if file_name.startswith("ifcfg-") else None)
    if not device:
        raise ModuleError("%s has no DEVICE= and its name is not ifcfg-<device>; add DEVICE= first." % path)
    kind_text = (variables.get("TYPE") or "").strip()
    controller = variables.get("BRIDGE") or None
    if kind_text.lower() == "bridge":
        kind = "bridge"
    elif kind_text.lower() in ("", "ethernet"):
        kind = "ethernet"
    else:
        raise ModuleError(
            "%s is of TYPE=%s; the migration converts bridges, bridge ports and ethernet NICs only. Convert it with "
            "nmcli connection migrate, or by hand." % (path, kind_text)
        )
    if kind == "bridge" and controller:
        raise ModuleError("%s is a bridge with BRIDGE=%s; Linux does not nest bridges. Remove BRIDGE= first." % (path, controller))
    return device, kind, controller


def _ethernet(variables: Mapping[str, str], path: str, unconverted: list[str]) -> Group:
    """The [ethernet] keys: the MAC, the cloned MAC and the MTU."""
    ethernet: Group = {}
    if variables.get("HWADDR"):
        mac = _keyfile.parse_mac(variables["HWADDR"])
        if mac is None:
            raise ModuleError("%s: HWADDR=%s is not a MAC address; fix it before migrating." % (path, variables["HWADDR"]))
        ethernet["mac-address"] = mac
    if variables.get("MACADDR"):
        mac = _keyfile.parse_mac(variables["MACADDR"])
        if mac is None:
            raise ModuleError("%s: MACADDR=%s is not a MAC address; fix it before migrating." % (path, variables["MACADDR"]))
        ethernet["cloned-mac-address"] = mac
    if variables.get("MTU"):
        try:
            ethernet["mtu"] = str(int(variables["MTU"]))
        except ValueError:
            unconverted.append("MTU")
    return ethernet


def _bridge_groups(groups: dict[str, Group], variables: Mapping[str, str], kind: str, controller: str | None, unconverted: list[str]) -> None:
    """The [bridge] group of a bridge, or the [bridge-port] group of a port."""
    if kind == "bridge":
        bridge: Group = {}
        stp = _bool(variables.get("STP"), False)  # ifcfg-rh: STP off unless STP=yes/on
        bridge["stp"] = "true" if stp else "false"
        if variables.get("DELAY"):
            try:
                bridge["forward-delay"] = str(int(float(variables["DELAY"])))
            except ValueError:
                unconverted.append("DELAY")
        options, unknown = _bridging_opts(variables.get("BRIDGING_OPTS"), BRIDGE_OPTS, "BRIDGING_OPTS")
        bridge.update(options)
        unconverted += unknown
        groups["bridge"] = bridge
    elif controller:
        options, unknown = _bridging_opts(variables.get("BRIDGING_OPTS"), PORT_OPTS, "BRIDGING_OPTS")
        unconverted += unknown
        groups["bridge-port"] = options
    elif variables.get("BRIDGING_OPTS"):
        unconverted.append("BRIDGING_OPTS")


def _ipv4(variables: Mapping[str, str], path: str) -> Group:
    bootproto = (variables.get("BOOTPROTO") or "none").strip().lower()
    addresses = _ipv4_addresses(variables)
    ipv4: Group = {}
    if bootproto in ("dhcp", "bootp"):
        ipv4["method"] = "auto"
    elif bootproto == "autoip":
        ipv4["method"] = "link-local"
    elif bootproto in ("none", "static", ""):
        ipv4["method"] = "manual" if addresses else "disabled"
    else:
        raise ModuleError("%s has BOOTPROTO=%s, which the migration does not convert; use none, static or dhcp." % (path, bootproto))
    if ipv4["method"] in ("auto", "manual"):
        for index, address in enumerate(addresses, start=1):
            ipv4["address%d" % index] = address
    gateway = variables.get("GATEWAY")
    never_default = _bool(variables.get("DEFROUTE"), True) is False
    if gateway and ipv4["method"] in ("auto", "manual") and addresses and not never_default:
        ipv4["gateway"] = gateway.strip()
    servers = _dns(variables, 4)
    if servers:
        ipv4["dns"] = servers
    if _bool(variables.get("PEERDNS"), True) is False and ipv4["method"] == "auto":
        ipv4["ignore-auto-dns"] = "true"
    if never_default:
        ipv4["never-default"] = "true"
    return ipv4


def _ipv6(variables: Mapping[str, str], path: str) -> Group:
    if _bool(variables.get("IPV6_DISABLED"), False):
        return {"method": "disabled"}
    if not _bool(variables.get("IPV6INIT"), False):
        return {"method": "ignore"}
    addresses: list[str] = []
    for text in [variables.get("IPV6ADDR") or "", *(variables.get("IPV6ADDR_SECONDARIES") or "").split()]:
        if not text.strip():
            continue
        try:
            iface = ipaddress.IPv6Interface(text.strip() if "/" in text else text.strip() + "/64")
        except ValueError as exc:
            raise ModuleError("%s: %s is not an IPv6 address: %s." % (path, text, exc)) from exc
        addresses.append("%s/%d" % (iface.ip, iface.network.prefixlen))
    ipv6: Group = {"method": "auto" if _bool(variables.get("IPV6_AUTOCONF"), not addresses) else ("manual" if addresses else "ignore")}
    for index, address in enumerate(addresses, start=1):
        ipv6["address%d" % index] = address
    gateway = variables.get("IPV6_DEFAULTGW")
    if gateway and addresses:
        ipv6["gateway"] = gateway.split("%")[0].strip()
    servers = _dns(variables, 6)
    if servers:
        ipv6["dns"] = servers
    return ipv6


def module_params(converted: Mapping[str, Any]) -> dict[str, Any]:
    """nm_keyfile parameters that write ``converted`` (a :func:`convert` result) through the module.

    The module then validates, adopts the NIC's existing keyfile profile, locks,
    backs up and writes 0600 as for any other profile.
    """
    groups = converted["groups"]
    connection = groups["connection"]
    params: dict[str, Any] = {
        "name": connection["id"],
        "uuid": connection["uuid"],
        "type": connection["type"],
        "interface": connection["interface-name"],
        "settings": {},
    }
    if "autoconnect" in connection:
        params["autoconnect"] = connection["autoconnect"] == "true"
    if "master" in connection:
        params["controller"] = connection["master"]
    if "zone" in connection:
        params["settings"]["connection"] = {"zone": connection["zone"]}
    ethernet = dict(groups.get("ethernet", {}))
    if "mac-address" in ethernet:
        params["mac_address"] = ethernet.pop("mac-address")
    if "cloned-mac-address" in ethernet:
        params["cloned_mac_address"] = ethernet.pop("cloned-mac-address")
    if ethernet:
        params["settings"]["ethernet"] = ethernet
    bridge = dict(groups.get("bridge", {}))
    if "stp" in bridge:
        params["stp"] = bridge.pop("stp") == "true"
    if "forward-delay" in bridge:
        params["forward_delay"] = int(bridge.pop("forward-delay"))
    if bridge:
        params["settings"]["bridge"] = bridge
    if groups.get("bridge-port"):
        params["settings"]["bridge-port"] = dict(groups["bridge-port"])
    for family in ("ipv4", "ipv6"):
        if family not in groups:
            continue
        values = dict(groups[family])
        ip: dict[str, Any] = {"method": values.pop("method")}
        addresses = [values.pop(key) for key in sorted((k for k in list(values) if k.startswith("address")), key=lambda k: int(k[7:]))]
        if addresses:
            ip["addresses"] = addresses
        if "gateway" in values:
            ip["gateway"] = values.pop("gateway")
        if "dns" in values:
            ip["dns"] = values.pop("dns")
        params[family] = ip
        if values:
            params["settings"][family] = values
    return params

# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ifcfg files: the rewrite plan and the validation of the module's parameters.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

Pure code, no I/O. Files are read and written through _ifcfg_codec (values
and lines as NetworkManager reads them, written so that bash agrees).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._ifcfg_codec import KEY_RE, Line, display, parse, parse_lines, read_values, render_lines
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import normalize_mac, validate_ifname

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

# The public names. display and parse come from _ifcfg_codec and are listed so
# that they stay exported (mypy's no_implicit_reexport): _doctor_read and
# _nm_migrate read files through _ifcfg.parse and _ifcfg.display.
__all__ = [
    "TYPES",
    "Change",
    "Plan",
    "Request",
    "build_request",
    "display",
    "parse",
    "plan",
    "plan_remove",
    "plan_rewrite",
    "stale_port_keys",
    "validate_address",
    "validate_dns",
    "validate_gateway",
    "validate_key",
    "validate_value",
    "yes_no",
]

# ---------------------------------------------------------------------------
# The rewrite plan


@dataclass
class Change:
    """One key change: ``action`` is add, set or remove."""

    key: str
    action: str
    before: str | None = None
    after: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"key": self.key, "action": self.action, "before": self.before, "after": self.after}


@dataclass
class Plan:
    """What a rewrite does: the key changes, the lines it comments out, the new content."""

    before: str | None  # text or None (no file)
    after: str | None  # text or None (file removed)
    changes: list[Change]
    commented: list[str]  # original text of lines kept as #NM: comments
    values: dict[str, str | None]  # {key: value} NetworkManager reads after the change (None: badly quoted)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def changed_keys(self) -> list[str]:
        return list(dict.fromkeys(change.key for change in self.changes))  # in order, once each


def plan_rewrite(before: str | None, desired: Mapping[str, str | None], purge: bool = False) -> Plan:
    """Plan the new content of a file.

    ``before``: the current content as text, or None when there is no file.
    ``desired``: {key: value}, in the order new keys are appended; a value of
    None removes the key. ``purge``: remove every other key as well.

    A key whose value already reads the same in NetworkManager and bash keeps
    its line untouched. Otherwise its last occurrence gets the new value (the
    earlier, shadowed ones go), or it is appended at the end. Comments, blank
    lines, other keys and their order stay. If the file is written, lines
    that neither NetworkManager nor bash can agree on are commented out as
    NetworkManager does (``#NM: ``); their presence alone also makes the
    file be rewritten, since bash may read the managed keys differently then.
    """
    lines = parse_lines(before) if before is not None else []
    changes: list[Change] = []
    removed: set[int] = set()
    for key, value in desired.items():
        positions = [i for i, line in enumerate(lines) if line.key == key]
        if value is None:
            if positions:
                changes.append(Change(key, "remove", before=lines[positions[-1]].value))
                removed.update(positions)
            continue
        if not positions:
            lines.append(Line.assignment(key, value))
            changes.append(Change(key, "add", after=value))
            continue
        last = lines[positions[-1]]
        if len(positions) == 1 and last.value == value and last.bash_reads_it():
            continue
        removed.update(positions[:-1])
        lines[positions[-1]] = Line.assignment(key, value)
        changes.append(Change(key, "set", before=last.value, after=value))
    if purge:
        for i, line in enumerate(lines):
            if line.key is not None and line.key not in desired and i not in removed:
                # one change per key, reported for its last occurrence
                others = [j for j, other in enumerate(lines) if other.key == line.key]
                if i == others[-1]:
                    changes.append(Change(line.key, "remove", before=line.value))
                removed.add(i)
    kept = [line for i, line in enumerate(lines) if i not in removed]
    commented = [line.text for line in kept if line.render() != [line.text]]
    after = before if before is not None and not changes and not commented else render_lines(kept)
    return Plan(before, after, changes, commented, read_values(kept))


def plan_remove(before: str | None) -> Plan:
    """Plan the removal of a file (state=absent)."""
    if before is None:
        return Plan(None, None, [], [], {})
    lines = parse_lines(before)
    changes = [Change(key, "remove", before=value) for key, value in read_values(lines).items()]
    return Plan(before, None, changes, [], {})


# ---------------------------------------------------------------------------
# Parameters -> desired keys, all validated up front

TYPES = {
    "bridge": "Bridge",
    "ethernet": "Ethernet",
    "tap": "Tap",
    "vlan": "Vlan",
    "bond": "Bond",
    "team": "Team",
    "infiniband": "InfiniBand",
}

# Keys that change the shell which sources the file (initscripts, as root,
# with set -a, which exports every assignment to every later command) or
# that bash refuses to assign; never written from settings. Besides bash's
# own variables: what the C library, the dynamic loader, the resolver and
# the interpreters initscripts may start read from the environment.
_SHELL_KEYS = frozenset(
    (
        # bash
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "CDPATH",
        "GLOBIGNORE",
        "SHELLOPTS",
        "BASHOPTS",
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "PROMPT_COMMAND",
        "HOME",
        "SHELL",
        "OPTIND",
        "OPTARG",
        "OPTERR",
        "UID",
        "EUID",
        "PPID",
        "GROUPS",
        "FUNCNEST",
        "TIMEFORMAT",
        "EXECIGNORE",
        "FIGNORE",
        "INPUTRC",
        "HISTFILE",
        "HISTFILESIZE",
        "HISTSIZE",
        "HISTCONTROL",
        "HISTIGNORE",
        "POSIXLY_CORRECT",
        "TMOUT",
        "HOSTFILE",
        "HOSTNAME",
        "HOSTTYPE",
        "MACHTYPE",
        "OSTYPE",
        "SHLVL",
        "RANDOM",
        "SECONDS",
        "LINENO",
        "COLUMNS",
        "LINES",
        "PWD",
        "OLDPWD",
        "COMP_WORDBREAKS",
        "READLINE_LINE",
        "EPOCHREALTIME",
        "SRANDOM",
        "MAIL",
        "MAILPATH",
        "MAILCHECK",
        "TERM",
        "TERMINFO",
        "TERMCAP",
        "TMPDIR",
        "USER",
        "LOGNAME",
        # C library, locale and time zone
        "LANG",
        "LANGUAGE",
        "NLSPATH",
        "LOCPATH",
        "GLIBC_TUNABLES",
        "TZ",
        "TZDIR",
        "GETCONF_DIR",
        "MSGVERB",
        "SEV_LEVEL",
        "CHARSET",
        "RESOLV_HOST_CONF",
        # resolver
        "HOSTALIASES",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        "RESOLV_MULTI",
        "RESOLV_REORDER",
        "RESOLV_SPOOF_CHECK",
        "RESOLV_ADD_TRIM_DOMAINS",
        "RESOLV_OVERRIDE_TRIM_DOMAINS",
        # interpreters and tools initscripts or its hooks may start
        "PERL5LIB",
        "PERLLIB",
        "PERL5OPT",
        "PERL5DB",
        "PERLIO",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "TCLLIBPATH",
        "GIT_EXEC_PATH",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        "SYSTEMD_PAGER",
        "SYSTEMD_EDITOR",
        "SYSTEMD_LOG_LEVEL",
        "DBUS_SYSTEM_BUS_ADDRESS",
        "DBUS_SESSION_BUS_ADDRESS",
        "XDG_CONFIG_HOME",
        "XDG_CONFIG_DIRS",
        "XDG_DATA_DIRS",
        "XDG_RUNTIME_DIR",
        "NOTIFY_SOCKET",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ftp_proxy",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    )
)
# Whole families: the loader (LD_), bash (BASH), locale (LC_), malloc, iconv,
# Python, Perl, Ruby, Lua, Java, Node, glibc's own (GLIBC_, GCONV_, NSS_),
# SSL/TLS libraries and the resolver.
_SHELL_KEY_PREFIXES = (
    "LD_",
    "BASH",
    "LC_",
    "MALLOC_",
    "GCONV_",
    "GLIBC_",
    "NSS_",
    "PYTHON",
    "PERL",
    "RUBY",
    "LUA_",
    "JAVA_",
    "_JAVA",
    "JDK_",
    "NODE_",
    "SSL",
    "OPENSSL",
    "GNUTLS",
    "GIO_",
    "GTK_",
    "DBUS_",
    "SYSTEMD_",
    "RES_",
    "RESOLV_",
)

# A bridge's forward delay is a u32 of centiseconds in the kernel.
_DELAY_MAX = (2**32 - 1) // 100
_IP_FAMILY_RE = re.compile(r"(?:IPADDR|PREFIX|NETMASK)[0-9]*\Z")
_DNS_RE = re.compile(r"DNS[0-9]+\Z")
_PORT_FORBIDDEN_RE = re.compile(r"(?:IPADDR|PREFIX|NETMASK|GATEWAY)[0-9]*\Z|DNS[0-9]+\Z|IPV6ADDR.*\Z|IPV6_DEFAULTGW\Z")
_BRIDGING_KEY_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")
_BRIDGING_VALUE_RE = re.compile(r"[A-Za-z0-9_.:,+-]+\Z")


def yes_no(flag: object) -> str:
    return "yes" if flag else "no"


def validate_key(key: object, where: str = "settings") -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ModuleError("%s: %r is not a valid key name; use letters, digits and _, not starting with a digit." % (where, key))
    if key in _SHELL_KEYS or key.startswith(_SHELL_KEY_PREFIXES):
        raise ModuleError(
            "%s: %s is a shell or loader variable; initscripts sources ifcfg files as root with set -a, "
            "so setting it would change how every later command runs. Remove it." % (where, key)
        )
    return key


def validate_value(value: str, where: str) -> str:
    if "\0" in value:
        raise ModuleError("%s: the value contains a NUL byte, which no ifcfg reader can represent." % where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ModuleError("%s: the value is not valid Unicode text (%s)." % (where, exc.reason)) from exc
    return value


def _ifcfg_mac(mac: str, option: str) -> str:
    """A unicast MAC written as given: colons only, no surrounding space (the file keeps the user's text)."""
    normalize_mac(mac, option, separators=":", strip=False)
    return mac


def validate_address(text: object) -> ipaddress.IPv4Interface:
    """An IPv4 host address with prefix length, like 198.18.5.10/24."""
    if isinstance(text, str) and ":" in text:
        raise ModuleError("addresses: %r is an IPv6 address; addresses takes IPv4 only. Set IPv6 with settings (IPV6INIT: true, IPV6ADDR: ...)." % (text,))
    match = re.fullmatch(r"([0-9.]+)/([0-9]{1,2})", text.strip()) if isinstance(text, str) else None
    if not match:
        raise ModuleError("addresses: %r is not an IPv4 address with a prefix length, like 198.18.5.10/24." % (text,))
    try:
        address = ipaddress.IPv4Address(match.group(1))
    except ValueError as exc:
        raise ModuleError("addresses: %r is not a valid IPv4 address: %s." % (text, exc)) from exc
    prefix = int(match.group(2))
    if not 1 <= prefix <= 32:
        raise ModuleError("addresses: %r has prefix length %d; it must be 1 to 32." % (text, prefix))
    iface = ipaddress.IPv4Interface("%s/%d" % (address, prefix))
    if address.is_multicast or address.is_unspecified or address.is_loopback or address == ipaddress.IPv4Address("255.255.255.255"):
        raise ModuleError("addresses: %s cannot be an interface address (multicast, unspecified, loopback or broadcast)." % text)
    if prefix <= 30 and address in (iface.network.network_address, iface.network.broadcast_address):
        which = "network" if address == iface.network.network_address else "broadcast"
        raise ModuleError("addresses: %s is the %s address of %s; give a host address." % (text, which, iface.network))
    return iface


def validate_gateway(text: str) -> ipaddress.IPv4Address:
    try:
        gateway = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise ModuleError("gateway %r is not an IPv4 address: %s." % (text, exc)) from exc
    if gateway.is_multicast or gateway.is_unspecified or gateway.is_loopback or gateway == ipaddress.IPv4Address("255.255.255.255"):
        raise ModuleError("gateway %s cannot be a gateway (multicast, unspecified, loopback or broadcast)." % gateway)
    return gateway


def validate_dns(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise ModuleError("dns: %r is not an IP address: %s." % (text, exc)) from exc


def _setting_text(key: str, value: object) -> str:
    where = "settings.%s" % key
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return validate_value(value, where)
    raise ModuleError("%s: give a string, number or boolean (or null to remove the key), not %s." % (where, type(value).__name__))


def _bridging_opts_text(opts: Mapping[Any, Any]) -> str:
    words: list[str] = []
    for key, value in opts.items():
        if not isinstance(key, str) or not _BRIDGING_KEY_RE.match(key):
            raise ModuleError("bridging_opts: %r is not a bridge option name (sysfs names like priority, hairpin_mode)." % (key,))
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or not _BRIDGING_VALUE_RE.match(value):
            raise ModuleError(
                "bridging_opts.%s: %r is not a valid value; initscripts splits BRIDGING_OPTS on blanks and writes each "
                "value to sysfs unquoted, so use only letters, digits and _ . : , + -." % (key, value)
            )
        words.append("%s=%s" % (key, value))
    return " ".join(words)


class Request:
    """The validated parameters: file path, desired keys, purge, managed key families, warnings."""

    def __init__(
        self,
        path: str,
        desired: dict[str, str | None],
        purge: bool = False,
        families: Iterable[re.Pattern[str]] = (),
        warnings: Iterable[str] = (),
    ) -> None:
        self.path = path
        self.desired = desired  # {key: value or None to remove}, in append order
        self.purge = purge
        self.families = list(families)  # regexes: keys in the file that match and are not desired go
        self.warnings = list(warnings)


def build_request(params: Mapping[str, Any]) -> Request:
    """Validate the module parameters and build the desired {key: value}.

    Raises ModuleError for the first problem; nothing has been read or written then.
    """
    device = validate_ifname(params.get("device"), "device")
    config_dir = params.get("config_dir") or "/etc/sysconfig/network-scripts"
    if "\0" in config_dir:
        raise ModuleError("config_dir must not contain a NUL byte.")
    path = config_dir.rstrip("/") + "/ifcfg-" + device
    if params.get("state", "present") == "absent":
        return Request(path, {})

    warnings: list[str] = []
    kind = params.get("type")
    settings = params.get("settings") or {}
    if kind is not None and kind not in TYPES:
        raise ModuleError("type %r is not one of %s." % (kind, ", ".join(sorted(TYPES))))
    _check_port(params, device, settings)
    _check_bridge_timers(params)
    ifaces, gateway_ip, servers = _checked_addressing(params, settings, warnings)
    desired = _desired_keys(params, device, ifaces, gateway_ip, servers)
    families = _add_settings(desired, params, settings)
    return Request(path, desired, bool(params.get("purge")), families, warnings)


def _check_port(params: Mapping[str, Any], device: str, settings: Mapping[Any, Any]) -> None:
    """A bridge port (``bridge`` set) names another device, is no bridge itself and carries no IP settings."""
    bridge = params.get("bridge")
    if bridge is None:
        return
    kind = params.get("type")
    bootproto = params.get("bootproto")
    validate_ifname(bridge, "bridge")
    if bridge == device:
        raise ModuleError("bridge %s names the device itself; a port must name another interface, the bridge it joins." % bridge)
    if kind == "bridge":
        raise ModuleError("%s is a bridge (type: bridge) and cannot be a port of bridge %s; Linux does not nest bridges." % (device, bridge))
    ip_options = [option for option in ("addresses", "gateway", "dns") if params.get(option)]
    if bootproto in ("dhcp", "static"):
        ip_options.append("bootproto: %s" % bootproto)
    ip_options += ["settings.%s" % key for key in settings if isinstance(key, str) and _PORT_FORBIDDEN_RE.match(key) and settings[key] is not None]
    if ip_options:
        raise ModuleError(
            "%s is a port of bridge %s (BRIDGE=%s): initscripts ignores IP settings on a bridge port, so %s would "
            "have no effect. Put them in the bridge's own ifcfg (device: %s) and use bootproto: none here."
            % (device, bridge, bridge, ", ".join(ip_options), bridge)
        )


def _check_bridge_timers(params: Mapping[str, Any]) -> None:
    """stp and delay belong to a bridge, and delay to the range the kernel holds."""
    kind, bridge, stp, delay = params.get("type"), params.get("bridge"), params.get("stp"), params.get("delay")
    bridge_only = [name for name, given in (("stp", stp is not None), ("delay", delay is not None)) if given]
    if bridge_only and (bridge is not None or (kind is not None and kind != "bridge")):
        raise ModuleError("%s applies to a bridge (type: bridge), not to %s." % (" and ".join(bridge_only), "a bridge port" if bridge else "type %s" % kind))
    if delay is not None:
        if not 0 <= delay <= _DELAY_MAX:
            raise ModuleError("delay must be 0 or more seconds, at most %d (what the kernel can hold), not %d." % (_DELAY_MAX, delay))
        if stp and not 2 <= delay <= 30:
            raise ModuleError("delay %d is out of range: with stp: true the kernel accepts a forward delay of 2 to 30 seconds." % delay)


def _checked_addressing(
    params: Mapping[str, Any], settings: Mapping[Any, Any], warnings: list[str]
) -> tuple[list[ipaddress.IPv4Interface], ipaddress.IPv4Address | None, list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """(interfaces, gateway or None, DNS servers), validated; a gateway outside every subnet is a warning."""
    addresses, gateway, dns = params.get("addresses"), params.get("gateway"), params.get("dns")
    ifaces = [validate_address(text) for text in addresses] if addresses else []
    if len({str(iface.ip) for iface in ifaces}) != len(ifaces):
        raise ModuleError("addresses lists the same address twice.")
    static_in_settings = any(isinstance(k, str) and re.match(r"IPADDR[0-9]*\Z", k) and settings[k] is not None for k in settings)
    if params.get("bootproto") == "static" and not ifaces and not static_in_settings:
        raise ModuleError("bootproto: static needs an address; give addresses, like [198.18.5.10/24].")
    gateway_ip = validate_gateway(gateway) if gateway else None
    if gateway_ip is not None and ifaces and not any(gateway_ip in iface.network for iface in ifaces):
        warnings.append("gateway %s is not in the subnet of any of the addresses; initscripts adds the route anyway, but check it." % gateway_ip)
    servers = [validate_dns(text) for text in dns] if dns else []
    return ifaces, gateway_ip, servers


def _desired_keys(
    params: Mapping[str, Any],
    device: str,
    ifaces: Sequence[ipaddress.IPv4Interface],
    gateway_ip: ipaddress.IPv4Address | None,
    servers: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> dict[str, str | None]:
    """The keys the module's own options write."""
    desired: dict[str, str | None] = {"DEVICE": device}
    for option, key, convert in (("type", "TYPE", TYPES.__getitem__), ("bridge", "BRIDGE", str), ("bootproto", "BOOTPROTO", str)):
        if params.get(option) is not None:
            desired[key] = convert(params[option])
    if params.get("hwaddr") is not None:
        desired["HWADDR"] = _ifcfg_mac(params["hwaddr"], "hwaddr")
    if params.get("macaddr") is not None:
        desired["MACADDR"] = _ifcfg_mac(params["macaddr"], "macaddr")
    if len(ifaces) == 1:
        desired["IPADDR"] = str(ifaces[0].ip)
        desired["PREFIX"] = str(ifaces[0].network.prefixlen)
    else:
        for index, iface in enumerate(ifaces):
            desired["IPADDR%d" % index] = str(iface.ip)
            desired["PREFIX%d" % index] = str(iface.network.prefixlen)
    if gateway_ip is not None:
        desired["GATEWAY"] = str(gateway_ip)
    for index, server in enumerate(servers, start=1):
        desired["DNS%d" % index] = str(server)
    for option, key in (("onboot", "ONBOOT"), ("nm_controlled", "NM_CONTROLLED"), ("userctl", "USERCTL"), ("peerdns", "PEERDNS"), ("peerntp", "PEERNTP")):
        if params.get(option) is not None:
            desired[key] = yes_no(params[option])
    if params.get("stp") is not None:
        desired["STP"] = yes_no(params["stp"])
    if params.get("delay") is not None:
        desired["DELAY"] = str(params["delay"])
    bridging_opts = params.get("bridging_opts")
    if bridging_opts is not None:
        desired["BRIDGING_OPTS"] = _bridging_opts_text(bridging_opts) if bridging_opts else None
    return desired


def _add_settings(desired: dict[str, str | None], params: Mapping[str, Any], settings: Mapping[Any, Any]) -> list[re.Pattern[str]]:
    """Add ``settings`` to ``desired``; return the key patterns the options own (their stale keys go)."""
    from_options = set(desired)
    families: list[tuple[re.Pattern[str], str]] = []
    if params.get("addresses") is not None:
        families.append((_IP_FAMILY_RE, "addresses"))
    if params.get("dns") is not None:
        families.append((_DNS_RE, "dns"))
    for key, value in settings.items():
        validate_key(key)
        if key in from_options:
            raise ModuleError("settings.%s: %s is written from an option of this module; set it there, not in settings." % (key, key))
        for regex, option in families:
            if regex.match(key):
                raise ModuleError("settings.%s: the %s option manages all %s keys; set it there, not in settings." % (key, option, key.rstrip("0123456789")))
        desired[key] = None if value is None else _setting_text(key, value)
    return [regex for regex, _option in families]


def stale_port_keys(request: Request, current_keys: Iterable[str]) -> list[str]:
    """IP keys left in a bridge port's file, which initscripts ignores."""
    if "BRIDGE" not in request.desired or request.purge:
        return []
    return [key for key in current_keys if _PORT_FORBIDDEN_RE.match(key) and key not in request.desired]


def plan(before: str | None, request: Request) -> tuple[Plan, list[str]]:
    """The planning step for state=present: clean up managed key families, then plan the rewrite.

    Returns (Plan, warnings).
    """
    current_keys = list(parse(before)) if before is not None else []
    desired = dict(request.desired)
    for key in current_keys:
        if key not in desired and any(regex.match(key) for regex in request.families):
            desired[key] = None
    warnings = list(request.warnings)
    stale = stale_port_keys(request, current_keys)
    if stale:
        warnings.append(
            "%s keeps %s from before it became a port of %s; initscripts ignores IP settings on a bridge port. "
            "Remove them (settings: {KEY: null}) or use purge: true." % (request.path, ", ".join(stale), request.desired["BRIDGE"])
        )
    result = plan_rewrite(before, desired, purge=request.purge)
    if result.commented and result.changed:
        warnings.append(
            "%s: commented out %d line(s) as '#NM: ' because bash, which sources the file as root, would run or read them"
            " differently from NetworkManager: %s" % (request.path, len(result.commented), "; ".join(display(t) for t in result.commented))
        )
    return result, warnings

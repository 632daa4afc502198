# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetworkManager keyfiles: the GKeyFile codec and NetworkManager's reading of it.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

Pure code, no I/O. Two layers:

- ``KeyFile``: the lines of a file, read and written with GLib's GKeyFile
  rules (what NetworkManager loads profiles with): groups in brackets,
  ``key=value`` pairs, ``#`` comments and blank lines kept as they are,
  escapes ``\\s \\t \\n \\r \\\\`` and, in lists, ``;`` separators with ``\\;``.
  Duplicate groups merge and the last occurrence of a key wins. A line that is
  neither makes GLib refuse the whole file, and NetworkManager ignores it.
- ``read_profile``: what NetworkManager makes of a keyfile, as far as this
  collection needs it: id, uuid, type, interface, port relation (``master`` /
  ``slave-type`` read by every version, ``controller`` / ``port-type`` only by
  1.46 and later), MACs, the ipv4/ipv6 methods, addresses, gateway and DNS,
  and the bridge's STP and forward delay. Setting and type aliases
  (``[ethernet]`` is ``[802-3-ethernet]``) are resolved as NetworkManager does.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import TypedDict

    class IPConfig(TypedDict):
        """What :func:`read_ip` reads from an [ipv4]/[ipv6] group."""

        method: str
        addresses: list[str]
        gateway: str | None
        dns: list[str]

# ---------------------------------------------------------------------------
# Values

_UNESCAPE = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_ESCAPE = {"\n": "\\n", "\r": "\\r", "\\": "\\\\"}
_LEADING = {" ": "\\s", "\t": "\\t"}


class ValueError_(ValueError):
    """A value that GLib refuses to interpret (bad escape, backslash at the end, not UTF-8)."""


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@overload
def unescape(raw: str, as_list: Literal[False] = ...) -> str: ...


@overload
def unescape(raw: str, as_list: Literal[True]) -> list[str]: ...


@overload
def unescape(raw: str, as_list: bool) -> str | list[str]: ...


def unescape(raw: str, as_list: bool = False) -> str | list[str]:
    """Decode a raw value as ``g_key_file_get_string`` (or ``_get_string_list``) does.

    Raises ValueError_ where GLib reports "a value that cannot be interpreted".
    """
    if not _utf8_ok(raw):
        raise ValueError_("the value is not valid UTF-8")
    items: list[str] = []
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        ch = raw[i]
        if ch == "\\":
            if i + 1 >= n:
                raise ValueError_("the value ends with a backslash")
            nxt = raw[i + 1]
            if nxt in _UNESCAPE:
                out.append(_UNESCAPE[nxt])
            elif as_list and nxt == ";":
                out.append(";")
            else:
                raise ValueError_("invalid escape sequence \\%s" % nxt)
            i += 2
            continue
        if as_list and ch == ";":
            items.append("".join(out))
            out = []
        else:
            out.append(ch)
        i += 1
    if not as_list:
        return "".join(out)
    if out:
        items.append("".join(out))
    return items


def escape(value: str, separator: bool = False) -> str:
    """Encode a string as ``g_key_file_set_string`` does (``separator``: a list item, ``;`` escaped)."""
    out: list[str] = []
    leading = True
    for ch in value:
        if leading and ch in _LEADING:
            out.append(_LEADING[ch])
            continue
        leading = False
        if ch in _ESCAPE:
            out.append(_ESCAPE[ch])
        elif separator and ch == ";":
            out.append("\\;")
        else:
            out.append(ch)
    return "".join(out)


def escape_list(items: Iterable[str]) -> str:
    """Encode a list as ``g_key_file_set_string_list`` does: every item followed by ``;``."""
    return "".join(escape(item, separator=True) + ";" for item in items)


# ---------------------------------------------------------------------------
# Lines

_SPACE = " \t\n\v\f\r"  # g_ascii_isspace


def _valid_group_name(name: str) -> bool:
    return bool(name) and not any(ch in "[]" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name)


def _valid_key_name(key: str) -> bool:
    """g_key_file_is_key_name: no = [ ], no leading/trailing space, optional [locale] suffix."""
    match = re.match(r"([^=\[\]]*)(\[[A-Za-z0-9_.@-]*\])?\Z", key)
    if not match or not match.group(1):
        return False
    base = match.group(1)
    return not (base[0] == " " or base[-1] == " ")


class Line:
    """One line: ``kind`` is comment (also blank), group, pair or invalid."""

    __slots__ = ("group", "key", "kind", "raw", "text")

    def __init__(self, text: str, kind: str, group: str | None = None, key: str | None = None, raw: str | None = None) -> None:
        self.text = text
        self.kind = kind
        self.group = group  # the group a pair belongs to, or the group a header opens
        self.key = key
        self.raw = raw  # the raw value of a pair

    @classmethod
    def pair(cls, group: str, key: str, raw: str) -> Line:
        return cls("%s=%s" % (key, raw), "pair", group, key, raw)


class KeyFile:
    """A keyfile as lines, with GKeyFile's reading; rewrites touch only what changes."""

    def __init__(self, lines: Iterable[Line] | None = None) -> None:
        self.lines = list(lines or [])

    # -- reading -----------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> KeyFile:
        pieces = text.split("\n")
        terminated = len(pieces)  # pieces before this index ended with a newline
        if pieces and pieces[-1] == "":
            pieces.pop()
        else:
            terminated -= 1
        lines: list[Line] = []
        group: str | None = None
        for index, piece in enumerate(pieces):
            # GLib drops the CR of a CRLF, not a CR at the very end of the data.
            text_line = piece[:-1] if piece.endswith("\r") and index < terminated else piece
            start = text_line.lstrip(_SPACE)
            if start == "" or start.startswith("#"):
                lines.append(Line(piece, "comment"))
                continue
            if start.startswith("["):
                close = start.find("]")
                if close > 0 and start[close + 1 :].strip(" \t") == "":
                    name = start[1:close]
                    if _valid_group_name(name):
                        group = name
                        lines.append(Line(piece, "group", group=name))
                    else:
                        lines.append(Line(piece, "invalid", key="invalid group name %r" % name))
                    continue
            eq = start.find("=")
            if eq > 0 and start[0] != "=":
                key = start[:eq].rstrip(_SPACE)
                raw = start[eq + 1 :].lstrip(_SPACE)
                nul = raw.find("\0")
                if nul >= 0:
                    raw = raw[:nul]
                if group is None:
                    lines.append(Line(piece, "invalid", key="a key before the first [group]"))
                elif not _valid_key_name(key):
                    lines.append(Line(piece, "invalid", key="invalid key name %r" % key))
                else:
                    lines.append(Line(piece, "pair", group, key, raw))
                continue
            lines.append(Line(piece, "invalid", key="not a key=value pair, [group] or # comment"))
        return cls(lines)

    @property
    def errors(self) -> list[str]:
        """Why GLib (and so NetworkManager) refuses to load the file; empty when it loads."""
        return ["line %d %r: %s" % (i + 1, line.text, line.key) for i, line in enumerate(self.lines) if line.kind == "invalid"]

    def groups(self) -> list[str]:
        """Group names in order of first appearance (duplicates merge)."""
        seen: list[str] = []
        for line in self.lines:
            if line.kind == "group" and line.group is not None and line.group not in seen:
                seen.append(line.group)
        return seen

    def raw_items(self, group: str) -> dict[str, str]:
        """{key: raw} of a group; the last occurrence wins, ordered by first appearance.

        Translations (``key[locale]``) are left out: GLib drops them unless the
        locale is the reader's, and NetworkManager reads no translated keys.
        """
        items: dict[str, str] = {}
        for line in self.lines:
            # A pair always has its key and raw value (parse, Line.pair).
            if line.kind == "pair" and line.group == group and line.key is not None and line.raw is not None and "[" not in line.key:
                items[line.key] = line.raw
        return items

    def has_group(self, group: str) -> bool:
        return any(line.kind == "group" and line.group == group for line in self.lines)

    def raw(self, group: str, key: str) -> str | None:
        return self.raw_items(group).get(key)

    def get(self, group: str, key: str) -> str | None:
        """The value as a string, or None when absent or not interpretable."""
        return _interpreted(self.raw(group, key))

    def get_list(self, group: str, key: str) -> list[str] | None:
        raw = self.raw(group, key)
        if raw is None:
            return None
        try:
            return unescape(raw, as_list=True)
        except ValueError_:
            return None

    def as_dict(self) -> dict[str, dict[str, str | None]]:
        """{group: {key: value}}; a value GLib cannot interpret is None."""
        result: dict[str, dict[str, str | None]] = {}
        for group in self.groups():
            values: dict[str, str | None] = {}
            for key, raw in self.raw_items(group).items():
                try:
                    values[key] = unescape(raw)
                except ValueError_:
                    values[key] = None
            result[group] = values
        return result

    # -- writing -----------------------------------------------------------
    def set_raw(self, group: str, key: str, raw: str) -> None:
        """Set a key's raw value: its last occurrence changes in place, earlier ones go; else it is appended."""
        positions = [i for i, line in enumerate(self.lines) if line.kind == "pair" and line.group == group and line.key == key]
        if positions:
            self.lines[positions[-1]] = Line.pair(group, key, raw)
            for i in reversed(positions[:-1]):
                del self.lines[i]
            return
        self._append(group, Line.pair(group, key, raw))

    def set(self, group: str, key: str, value: str) -> None:
        self.set_raw(group, key, escape(value))

    def set_list(self, group: str, key: str, items: Iterable[str]) -> None:
        self.set_raw(group, key, escape_list(items))

    def ensure_group(self, group: str) -> None:
        if not self.has_group(group):
            if self.lines and self.lines[-1].text.strip() != "":
                self.lines.append(Line("", "comment"))
            self.lines.append(Line("[%s]" % group, "group", group=group))

    def _append(self, group: str, new_line: Line) -> None:
        """After the last pair of the group's last block (its header when empty); a new group goes at the end."""
        if not self.has_group(group):
            self.ensure_group(group)
            self.lines.append(new_line)
            return
        headers = [i for i, line in enumerate(self.lines) if line.kind == "group" and line.group == group]
        start = headers[-1]
        end = start + 1
        while end < len(self.lines) and self.lines[end].kind != "group":
            end += 1
        insert = start + 1
        for i in range(start + 1, end):
            if self.lines[i].kind == "pair":
                insert = i + 1
        self.lines.insert(insert, new_line)

    def remove(self, group: str, key: str) -> bool:
        """Remove every occurrence of a key; True when there was one."""
        keep = [line for line in self.lines if not (line.kind == "pair" and line.group == group and line.key == key)]
        removed = len(keep) != len(self.lines)
        self.lines = keep
        return removed

    def remove_group(self, group: str) -> bool:
        """Remove a group: its headers, its pairs and the comments inside its blocks."""
        keep: list[Line] = []
        inside = False
        for line in self.lines:
            if line.kind == "group":
                inside = line.group == group
            if not inside:
                keep.append(line)
        while keep and keep[-1].kind == "comment" and keep[-1].text.strip() == "":
            keep.pop()
        removed = len(keep) != len(self.lines)
        self.lines = keep
        return removed

    def render(self) -> str:
        return "".join(line.text + "\n" for line in self.lines)


def dumps(groups: Mapping[str, Mapping[str, str | list[str]]]) -> str:
    """A new keyfile from {group: {key: value}} (values: str, or list for a list), as NetworkManager lays it out."""
    keyfile = KeyFile()
    for group, values in groups.items():
        keyfile.ensure_group(group)
        for key, value in values.items():
            if isinstance(value, list):
                keyfile.set_list(group, key, value)
            else:
                keyfile.set(group, key, value)
    return keyfile.render()


# ---------------------------------------------------------------------------
# NetworkManager's view of a keyfile

# Setting names and their keyfile aliases (nm-keyfile-utils.c).
SETTING_ALIASES = {
    "802-3-ethernet": "ethernet",
    "802-11-wireless": "wifi",
    "802-11-wireless-security": "wifi-security",
    "802-11-olpc-mesh": "olpc-mesh",
}
_ALIAS_TO_SETTING = {alias: name for name, alias in SETTING_ALIASES.items()}

# Base types: a profile without [connection] type gets the type of the one it has.
BASE_TYPES = (
    "802-3-ethernet", "bridge", "bond", "team", "vlan", "802-11-wireless", "infiniband", "vxlan", "macvlan",
    "tun", "veth", "dummy", "loopback", "ip-tunnel", "wireguard", "vrf", "ovs-bridge", "ovs-port", "ovs-interface",
)  # fmt: skip
PORT_SETTINGS = {"bridge-port": "bridge", "team-port": "team", "bond-port": "bond"}

SYSTEM_DIR = "/etc/NetworkManager/system-connections"
SUFFIX = ".nmconnection"


def setting_name(group: str) -> str:
    """The setting a [group] holds (``ethernet`` -> ``802-3-ethernet``)."""
    return _ALIAS_TO_SETTING.get(group, group)


def short_type(kind: str) -> str:
    """The name used in this collection's options and results (``802-3-ethernet`` -> ``ethernet``)."""
    return SETTING_ALIASES.get(kind, kind)


def ignored_name(name: str, in_etc: bool = True) -> str | None:
    """Why NetworkManager skips a file of this name in a profile directory, or None.

    nms-keyfile-utils.c: hidden files, backups (``~``), editor and mkstemp
    leftovers (``.`` and six letters or digits), ``.pem``/``.der`` certificates;
    outside /etc only ``*.nmconnection`` is read.
    """
    if name.startswith("."):
        return "hidden file (leading .)"
    if name.endswith("~"):
        return "backup file (trailing ~)"
    if re.search(r"\.[A-Za-z0-9]{6}\Z", name) and not name.endswith(SUFFIX):
        return "temporary file (mkstemp suffix)"
    if name.lower().endswith((".pem", ".der")):
        return "certificate file (.pem/.der)"
    if not in_etc and not name.endswith(SUFFIX):
        return "outside /etc only *.nmconnection files are read"
    return None


def file_name_for(profile_id: str) -> str:
    """The file name NetworkManager itself gives a new profile: ``/`` -> ``_``, no leading ``.``, ``.nmconnection``."""
    name = profile_id.replace("/", "_")
    if name.startswith("."):
        name = "_" + name[1:]
    return name + SUFFIX


def id_from_file_name(name: str) -> str:
    """The id NetworkManager gives a profile without one: the file name without ``.nmconnection``."""
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) and len(name) > len(SUFFIX) else name


_BOOL_TRUE = ("true", "yes", "1", "on")
_BOOL_FALSE = ("false", "no", "0", "off")


def parse_bool(text: str | None, default: bool | None = None) -> bool | None:
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in _BOOL_TRUE:
        return True
    if lowered in _BOOL_FALSE:
        return False
    return default


def parse_int(text: str | None, default: int | None = None) -> int | None:
    if text is None:
        return default
    try:
        return int(text.strip(), 0)
    except ValueError:
        return default


_MAC_HEX = re.compile(r"[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\Z")
CLONED_SPECIAL = ("preserve", "permanent", "random", "stable")


def parse_mac(text: str | None, special: tuple[str, ...] = ()) -> str | None:
    """A MAC as NetworkManager reads it (hex with ``:``, or the old list of decimal bytes), upper case; else None."""
    if text is None:
        return None
    text = text.strip()
    if text in special:
        return text
    if _MAC_HEX.match(text):
        return text.replace("-", ":").upper()
    try:
        octets = [int(part) for part in unescape(text, as_list=True)]
    except (ValueError, ValueError_):
        return None
    if len(octets) == 6 and all(0 <= octet <= 255 for octet in octets):
        return ":".join("%02X" % octet for octet in octets)
    return None


_ADDRESS_KEY = re.compile(r"(address|addresses)([0-9]*)\Z")


def _address_keys(values: Iterable[str]) -> list[str]:
    """The address keys in NetworkManager's reading order: by number (none = 0), ``address`` before ``addresses``."""
    keys: list[tuple[int, int, str]] = []
    for key in values:
        match = _ADDRESS_KEY.match(key)
        if match:
            number = int(match.group(2)) if match.group(2) else 0
            keys.append((number, 0 if match.group(1) == "address" else 1, key))
    return [key for _number, _kind, key in sorted(keys)]


def _parse_address(text: str, family: int) -> tuple[str, str | None] | None:
    """(``addr/prefix``, gateway or None) from ``ADDR[/PREFIX][,GW]`` or the old ``ADDR;PREFIX;GW;``; None if invalid."""
    parts = re.split(r"[,;]", text.strip())
    while parts and parts[-1] == "":
        parts.pop()
    if not parts:
        return None
    first = parts[0]
    rest = parts[1:]
    prefix_text: str | None
    if "/" in first:
        addr_text, prefix_text = first.split("/", 1)
    elif rest and rest[0].isdigit():
        addr_text, prefix_text = first, rest.pop(0)
    else:
        addr_text, prefix_text = first, None
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        return None
    if addr.version != family:
        return None
    max_prefix = 32 if family == 4 else 128
    if prefix_text is None:
        prefix = 24 if family == 4 else 64
    elif not prefix_text.isdigit():
        prefix = 24 if family == 4 else 64  # NetworkManager warns and takes the default
    elif int(prefix_text) <= max_prefix:
        prefix = int(prefix_text)
    else:
        return None
    gateway: str | None = None
    if rest and rest[0]:
        try:
            gw = ipaddress.ip_address(rest[0])
        except ValueError:
            return None
        if gw.version != family:
            return None
        gateway = str(gw)
    return "%s/%d" % (addr, prefix), gateway


def _interpreted(raw: str | None) -> str | None:
    """A raw value unescaped, or None when absent or not interpretable."""
    if raw is None:
        return None
    try:
        return unescape(raw)
    except ValueError_:
        return None


def _scalar(raw_values: Mapping[str, str], key: str) -> str | None:
    return _interpreted(raw_values.get(key))


def read_ip(raw_values: Mapping[str, str], family: int) -> IPConfig:
    """{method, addresses, gateway, dns} from an [ipv4]/[ipv6] group's {key: raw value}."""
    method = _scalar(raw_values, "method") or "auto"
    addresses: list[str] = []
    legacy_gateway: str | None = None
    for key in _address_keys(raw_values):
        text = _scalar(raw_values, key)
        parsed = _parse_address(text, family) if text is not None else None
        if parsed is None:
            continue
        address, gateway = parsed
        if address not in addresses:
            addresses.append(address)
            if gateway and legacy_gateway is None:
                legacy_gateway = gateway
    gateway = _scalar(raw_values, "gateway")
    if gateway is not None:
        try:
            gw = ipaddress.ip_address(gateway.strip())
            gateway = str(gw) if gw.version == family else None
        except ValueError:
            gateway = None
    if gateway is None:
        gateway = legacy_gateway
    if parse_bool(_scalar(raw_values, "never-default"), False):
        gateway = None  # NetworkManager's normalisation drops the gateway of a never-default profile
    dns: list[str] = []
    raw_dns = raw_values.get("dns")
    if raw_dns is not None:
        try:
            items = unescape(raw_dns, as_list=True)
        except ValueError_:
            items = []
        for item in items:
            try:
                server = ipaddress.ip_address(item.strip())
            except ValueError:
                continue
            if server.version == family:
                dns.append(str(server))
    return {"method": method, "addresses": addresses, "gateway": gateway, "dns": dns}


def decode(raw: str) -> str | None:
    """A raw value for display: decoded as a string, else as the list GLib reads (``a\\;b;`` stays raw), else None."""
    try:
        return unescape(raw)
    except ValueError_:
        pass
    try:
        unescape(raw, as_list=True)
    except ValueError_:
        return None
    return raw


def read_profile(text: str, file_name: str, before_1_46: bool = False) -> dict[str, Any]:
    """What NetworkManager reads from a keyfile (text) named ``file_name``.

    Returns a dict: ``loads`` (False when GLib refuses the file), ``errors``,
    ``id``, ``uuid``, ``type``, ``interface_name``, ``controller``,
    ``port_type``, ``controller_keys`` (which spelling is present),
    ``mac_address``, ``cloned_mac_address``, ``autoconnect``, ``ipv4``,
    ``ipv6``, ``bridge`` ({stp, forward_delay}), ``settings`` (every group as
    {key: value}) and ``problems`` (what makes NetworkManager read it
    differently from how it looks, or not at all). ``before_1_46`` reads the
    port keys as NetworkManager 1.42-1.44 does (``master``/``slave-type``
    only); otherwise as 1.46 and later (``controller``/``port-type`` too).
    """
    return interpret(KeyFile.parse(text), file_name, before_1_46)


def interpret(keyfile: KeyFile, file_name: str, before_1_46: bool = False) -> dict[str, Any]:
    """:func:`read_profile` for a parsed KeyFile."""
    errors = keyfile.errors
    problems: list[str] = []
    if errors:
        problems.append("NetworkManager cannot load this file (GLib refuses it): %s." % "; ".join(errors))
    raw_settings, settings = _decoded_settings(keyfile, problems)
    connection = settings.get("connection", {})
    kind = _profile_type(connection, settings)
    controller, port_type, controller_keys = _controller(connection, settings, before_1_46, problems)
    ethernet = settings.get("802-3-ethernet", {})
    cloned = ethernet.get("cloned-mac-address")
    if cloned is None and kind == "bridge":
        cloned = settings.get("bridge", {}).get("mac-address")
    bridge: dict[str, bool | int | None] = {}
    if kind == "bridge":
        values = settings.get("bridge", {})
        bridge = {
            "stp": parse_bool(values.get("stp"), True),
            "forward_delay": parse_int(values.get("forward-delay"), 15),
        }
    port = bool(controller)
    profile: dict[str, Any] = {
        "loads": not errors,
        "errors": errors,
        "id": connection.get("id") or id_from_file_name(file_name),
        "uuid": connection.get("uuid"),
        "type": short_type(kind) if kind else None,
        "interface_name": _interface_name(connection, settings),
        "controller": controller,
        "port_type": port_type if port else None,
        "controller_keys": controller_keys,
        "mac_address": parse_mac(ethernet.get("mac-address")),
        "cloned_mac_address": parse_mac(cloned, CLONED_SPECIAL),
        "autoconnect": parse_bool(connection.get("autoconnect"), True),
        "ipv4": {} if port else read_ip(raw_settings.get("ipv4", {}), 4),
        "ipv6": {} if port else read_ip(raw_settings.get("ipv6", {}), 6),
        "bridge": bridge,
        "settings": {short_group(name): values for name, values in settings.items()},
        "problems": problems,
    }
    if not kind:
        problems.append("NetworkManager cannot tell the profile's type: set [connection] type=.")
    if port and not port_type:
        problems.append("The profile names controller %s but not its port type; set slave-type=bridge." % controller)
    return profile


def _decoded_settings(keyfile: KeyFile, problems: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str | None]]]:
    """(raw values, decoded values) of each setting; a key NetworkManager cannot decode is a problem."""
    # The last group of a setting wins as a whole (nm_connection_add_setting replaces).
    raw_settings: dict[str, dict[str, str]] = {}
    settings: dict[str, dict[str, str | None]] = {}
    for group in keyfile.groups():
        raw_settings[setting_name(group)] = raw_values = keyfile.raw_items(group)
        values: dict[str, str | None] = {}
        for key, raw in raw_values.items():
            values[key] = decode(raw)
            if values[key] is None:
                try:
                    unescape(raw)
                except ValueError_ as exc:
                    problems.append("[%s] %s: %s; NetworkManager ignores this key." % (group, key, exc))
        settings[setting_name(group)] = values
    return raw_settings, settings


def _profile_type(connection: Mapping[str, str | None], settings: Mapping[str, Mapping[str, str | None]]) -> str | None:
    """The profile's type: [connection] type=, else the base setting it has."""
    kind = connection.get("type")
    if kind is not None:
        kind = setting_name(kind)
    if not kind:
        for base in BASE_TYPES:
            if base in settings:
                return base
    return kind


def _interface_name(connection: Mapping[str, str | None], settings: Mapping[str, Mapping[str, str | None]]) -> str | None:
    """[connection] interface-name=, else the legacy one of a bridge, bond, team or vlan setting."""
    interface = connection.get("interface-name")
    if not interface:
        for base in ("bridge", "bond", "team", "vlan"):
            legacy = settings.get(base, {}).get("interface-name")
            if legacy:
                return legacy
    return interface


def _controller(
    connection: Mapping[str, str | None], settings: Mapping[str, Mapping[str, str | None]], before_1_46: bool, problems: list[str]
) -> tuple[str | None, str | None, list[str]]:
    """(controller, port type, controller keys set) as this NetworkManager reads them; mismatches are problems."""
    master = connection.get("master")
    controller_new = connection.get("controller")
    slave_type = connection.get("slave-type")
    port_type_new = connection.get("port-type")
    controller_keys = [key for key in ("master", "controller") if connection.get(key)]
    if controller_new and not master:
        problems.append(
            "[connection] has controller=%s but no master=; NetworkManager before 1.46 (RHEL 9.0-9.3, Debian 12) "
            "ignores controller= and brings the device up on its own. Add master=%s." % (controller_new, controller_new)
        )
    if port_type_new and not slave_type:
        problems.append("[connection] has port-type=%s but no slave-type=; NetworkManager before 1.46 ignores port-type=." % port_type_new)
    if master and controller_new and master != controller_new:
        problems.append(
            "[connection] master=%s and controller=%s differ; NetworkManager before 1.46 uses master, later ones controller." % (master, controller_new)
        )
    if before_1_46:
        controller, port_type = master, slave_type
    else:
        controller, port_type = master or controller_new, slave_type or port_type_new
    if controller and not port_type:
        for setting, ptype in PORT_SETTINGS.items():
            if setting in settings:
                port_type = ptype
                break
    return controller, port_type, controller_keys


def short_group(name: str) -> str:
    return SETTING_ALIASES.get(name, name)

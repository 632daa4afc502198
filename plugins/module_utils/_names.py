# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one validator for interface names and MAC addresses in this collection.

Every module that takes an interface name or a MAC checks it here; a caller's
extra rule is a keyword argument (``ascii_only`` for taps), never a copy of
the rules. Two shapes of each check:

- ``ifname_problem(name, what)`` returns why ``name`` is refused, or None;
  ``validate_ifname(name, what)`` returns ``name`` or raises ModuleError.
- ``mac_problem(value, what)`` returns ``(normalised, None)`` or
  ``(None, why)``; ``normalize_mac(value, what)`` returns the normalised MAC
  or raises ModuleError. ``parse_mac``, ``is_multicast`` and
  ``is_locally_administered`` answer questions about a MAC without refusing.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import re

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

IFNAMSIZ = 16  # linux/if.h: 15 bytes and the terminating NUL
IFNAME_MAX_BYTES = IFNAMSIZ - 1

# Names the kernel accepts but that collide with the entries beside every
# interface: /proc/sys/net/ipv{4,6}/conf/{all,default} and
# /sys/class/net/bonding_masters. "." and ".." are refused by dev_valid_name().
RESERVED_IFNAMES = frozenset((".", "..", "all", "default", "bonding_masters"))

IFNAME_HINT = "Use 1 to 15 bytes of letters, digits, '-', '_' or '.'."
MAC_EXAMPLE = "52:54:00:12:34:56"
KVM_MAC_PREFIX = "52:54:00"

_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}\Z")


# ---------------------------------------------------------------- interface names


def _ifname_reasons(name: str, ascii_only: bool) -> list[str]:
    reasons = []
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return ["it is not valid Unicode text"]
    if size > IFNAME_MAX_BYTES:
        reasons.append("it is longer than %d bytes (the kernel's limit; it is %d bytes)" % (IFNAME_MAX_BYTES, size))
    if name in (".", ".."):
        reasons.append("it is '.' or '..', a reserved name")
    elif name in RESERVED_IFNAMES:
        reasons.append("it is a reserved name (%s sits beside the interfaces in /proc/sys/net or /sys/class/net)" % name)
    if "/" in name:
        reasons.append("it contains '/'")
    if ":" in name:
        reasons.append("it contains ':' (the kernel refuses it; alias names such as eth0:1 are not interfaces)")
    if "%" in name:
        reasons.append("it contains '%' (the kernel reads it as a template such as br%d and picks a name of its own)")
    if "\0" in name:
        reasons.append("it contains a NUL byte")
    if any(char.isspace() for char in name):
        reasons.append("it contains white space")
    elif any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in name):
        reasons.append("it contains control characters")
    if ascii_only and not name.isascii():
        reasons.append("it has non-ASCII characters")
    return reasons


def ifname_problem(name: object, what: str = "interface name", *, ascii_only: bool = False) -> str | None:
    """Why ``name`` cannot be a Linux interface name, or None when it can.

    The kernel's rules (dev_valid_name): 1-15 bytes, not ``.`` or ``..``, no
    ``/``, ``:`` or white space. Also refused: ``%`` (dev_alloc_name reads
    ``br%d`` as a template), control characters, and ``all``, ``default`` and
    ``bonding_masters``, which shadow entries beside the interfaces.
    ``ascii_only`` adds the rule for names carried as bytes that tools print
    as ASCII (taps).
    """
    if not isinstance(name, str) or not name:
        return "%s must be a non-empty string, got %r. %s" % (what, name, IFNAME_HINT)
    reasons = _ifname_reasons(name, ascii_only)
    if not reasons:
        return None
    return "%s %r is not a valid interface name: %s. %s" % (what, name, "; ".join(reasons), IFNAME_HINT)


def validate_ifname(name: object, what: str = "interface name", *, ascii_only: bool = False) -> str:
    """Return ``name`` when it is a valid interface name (see ifname_problem); raise ModuleError otherwise."""
    problem = ifname_problem(name, what, ascii_only=ascii_only)
    if problem or not isinstance(name, str):
        raise ModuleError(problem or "%s must be a string." % what)
    return name


# ---------------------------------------------------------------- MAC addresses


def parse_mac(value: object, *, separators: str = ":-", strip: bool = True) -> bytes | None:
    """The six octets of ``value`` as bytes, or None when it is not a MAC.

    Accepts six hexadecimal octets separated by one of ``separators``
    throughout (``52:54:00:ab:cd:ef``, ``52-54-00-AB-CD-EF``); ``strip``
    allows surrounding white space.
    """
    if not isinstance(value, str):
        return None
    text = value.strip() if strip else value
    match = _MAC_RE.match(text)
    if not match or match.group(1) not in separators:
        return None
    return bytes(int(part, 16) for part in re.split("[:-]", text))


def format_mac(octets: bytes) -> str:
    """Lower-case, colon-separated text of six octets."""
    return ":".join("%02x" % octet for octet in octets)


def is_multicast(octets: bytes) -> bool:
    """True for group addresses (the lowest bit of the first octet), broadcast included."""
    return bool(octets[0] & 0x01)


def is_locally_administered(octets: bytes) -> bool:
    """True when the second-lowest bit of the first octet is set (not a vendor-assigned address)."""
    return bool(octets[0] & 0x02)


def mac_problem(value: object, what: str = "mac", *, separators: str = ":-", strip: bool = True, hint: str = "") -> tuple[str | None, str | None]:
    """Return ``(mac, None)``, the MAC in lower case with colons, or ``(None, why)``.

    Refused: anything but six hex octets (see parse_mac), multicast and
    broadcast addresses, and the all-zero address; the kernel refuses all of
    them as a station address ("cannot assign requested address").
    ``hint`` is appended to the refusal of a usable-looking but unusable MAC.
    """
    octets = parse_mac(value, separators=separators, strip=strip)
    if octets is None:
        joined = " or ".join("'%s'" % sep for sep in separators)
        return None, "%s %r is not a MAC address: write six hexadecimal octets separated by %s, for example %s." % (
            what,
            value,
            joined,
            MAC_EXAMPLE,
        )
    text = format_mac(octets)
    suggestion = "%s:%s" % (KVM_MAC_PREFIX, format_mac(octets)[9:])
    if is_multicast(octets):
        why = (
            "%s %s is a multicast address (the lowest bit of the first octet, 0x%02x, is set); a network card cannot use it "
            "as its own address: the kernel refuses it with 'cannot assign requested address'. Use a unicast address such as "
            "%s:xx:xx:xx (the locally administered range of KVM), e.g. %s." % (what, text, octets[0], KVM_MAC_PREFIX, suggestion)
        )
        return None, why + (" " + hint if hint else "")
    if not any(octets):
        why = (
            "%s 00:00:00:00:00:00 is the all-zero address, not a valid station address: the kernel refuses it with "
            "'cannot assign requested address'. Use a unicast address such as %s:xx:xx:xx, e.g. %s." % (what, KVM_MAC_PREFIX, suggestion)
        )
        return None, why + (" " + hint if hint else "")
    return text, None


def normalize_mac(value: object, what: str = "mac", *, separators: str = ":-", strip: bool = True, hint: str = "") -> str:
    """Return the unicast MAC in lower case with colons (see mac_problem); raise ModuleError otherwise."""
    mac, problem = mac_problem(value, what, separators=separators, strip=strip, hint=hint)
    if problem or mac is None:
        raise ModuleError(problem or "%s %r is not a MAC address." % (what, value))
    return mac

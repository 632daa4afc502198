# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridging a NIC through NetworkManager: read NetworkManager's view, plan the two profiles, word the outcome.

- ``read_state`` asks NetworkManager (nmcli, terse) for the NIC's device, the
  profiles of the NIC and the bridge, and which are active.
- ``plan`` (pure) turns that and the wanted settings into the arguments of two
  nm_keyfile calls (the bridge first, then the NIC's own profile as its port),
  the profile to activate, and whether the runtime already matches.
- ``outcome_message`` (pure) words a failed or rolled-back change for the play.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import validate_ifname

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import TypedDict

    from ansible_collections.kvmhost.bridging.plugins.module_utils._nm import Runner

    class NmState(TypedDict):
        """read_state's result: the profiles (nmcli connection show), the devices' fields (None: no such device), each
        ethernet and bridge profile's fields by UUID."""

        profiles: list[dict[str, str]]
        devices: dict[str, dict[str, str] | None]
        details: dict[str, dict[str, str]]


PROFILE_FIELDS = (
    "connection.id",
    "connection.uuid",
    "connection.interface-name",
    "connection.master",
    "connection.slave-type",
    "ipv4.method",
    "ipv4.addresses",
    "ipv4.gateway",
    "ipv4.dns",
    "ipv4.never-default",
    "ipv6.method",
    "ipv6.addresses",
    "ipv6.gateway",
    "ipv6.dns",
)
DEVICE_FIELDS = ("GENERAL.HWADDR", "GENERAL.STATE", "GENERAL.CONNECTION", "GENERAL.CON-UUID")
LIST_FIELDS = ("NAME", "UUID", "TYPE", "DEVICE", "FILENAME", "ACTIVE")
BOOTPROTOS = ("inherit", "dhcp", "static", "none")


def unescape_terse(text: str) -> str:
    """nmcli -t/-g escapes ':' and '\\' with a backslash; undo it."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def split_terse(line: str) -> list[str]:
    """Split one nmcli -t line at its unescaped colons, and unescape each field."""
    fields: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            i += 2
            continue
        if line[i] == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(line[i])
        i += 1
    fields.append("".join(cur))
    return fields


def _values(out: str, fields: Sequence[str]) -> dict[str, str]:
    """nmcli -g F1,F2,... prints one value per line, in order."""
    lines = out.split("\n")
    return {field: unescape_terse(lines[n]) if n < len(lines) else "" for n, field in enumerate(fields)}


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()] if value else []


def read_state(run: Runner, nic: str, bridge: str, nmcli: str = "nmcli") -> NmState:
    """NetworkManager's view of ``nic`` and ``bridge``. ``run(argv)`` returns (rc, stdout, stderr)."""

    def call(argv: list[str], what: str) -> str:
        rc, out, err = run([nmcli, *argv])
        if rc != 0:
            raise ModuleError("nmcli could not %s: %s" % (what, (err or out or "").strip() or "no message"))
        return out

    profiles: list[dict[str, str]] = []
    for line in call(["-g", ",".join(LIST_FIELDS), "connection", "show"], "list the profiles").splitlines():
        if line:
            profiles.append(dict(zip(("name", "uuid", "type", "device", "filename", "active"), split_terse(line))))
    devices: dict[str, dict[str, str] | None] = {}
    for name in (nic, bridge):
        rc, out, _err = run([nmcli, "-g", ",".join(DEVICE_FIELDS), "device", "show", name])
        devices[name] = _values(out, DEVICE_FIELDS) if rc == 0 else None
    details: dict[str, dict[str, str]] = {}
    for profile in profiles:
        if profile["type"] in ("802-3-ethernet", "bridge"):
            out = call(["-g", ",".join(PROFILE_FIELDS), "connection", "show", "uuid", profile["uuid"]], "read the profile %s" % profile["name"])
            details[profile["uuid"]] = _values(out, PROFILE_FIELDS)
    return {"profiles": profiles, "devices": devices, "details": details}


def _in_etc(profile: Mapping[str, str]) -> bool:
    return profile.get("filename", "").startswith("/etc/")


def find_profile(state: NmState, interface: str, kind: str) -> dict[str, str] | None:
    """The profile NetworkManager uses for ``interface``: the active one, else one bound to it by name (on disk)."""
    device = state["devices"].get(interface) or {}
    active = device.get("GENERAL.CON-UUID") or ""
    candidates = [p for p in state["profiles"] if p["type"] == kind and state["details"].get(p["uuid"], {}).get("connection.interface-name") == interface]
    for profile in state["profiles"]:
        if profile["uuid"] == active and profile["type"] == kind and _in_etc(profile):
            return profile
    on_disk = [p for p in candidates if _in_etc(p)]
    return on_disk[0] if on_disk else None


def _ip(
    details: Mapping[str, str],
    family: int,
    bootproto: str | None = None,
    addresses: Iterable[str] = (),
    gateway: str | None = None,
    dns: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The [ipv4]/[ipv6] options of the bridge: inherited from the NIC's profile, or as asked."""
    prefix = "ipv%d." % family
    method = details.get(prefix + "method") or ("disabled" if family == 4 else "ignore")
    inherited_dns = _list(details.get(prefix + "dns", "").replace(" ", ","))
    if bootproto == "dhcp":
        return {"method": "auto", "addresses": [], "gateway": "", "dns": list(dns) if dns else inherited_dns}
    if bootproto == "static":
        return {"method": "manual", "addresses": list(addresses), "gateway": gateway or "", "dns": list(dns) if dns else inherited_dns}
    if bootproto == "none":
        return {"method": "disabled", "addresses": [], "gateway": "", "dns": []}
    out = {
        "method": method,
        "addresses": _list(details.get(prefix + "addresses", "")),
        "gateway": details.get(prefix + "gateway", "") or "",
        "dns": list(dns) if dns else inherited_dns,
    }
    if method != "manual":
        out["addresses"] = []
        out["gateway"] = ""
    return out


def plan(
    state: NmState,
    nic: str,
    bridge: str,
    bootproto: str = "inherit",
    addresses: Sequence[str] = (),
    gateway: str = "",
    dns: Sequence[str] = (),
    stp: bool = False,
    forward_delay: int = 0,
) -> dict[str, Any]:
    """The two profiles (bridge, port), what to activate, and whether NetworkManager already runs them."""
    device, mac, port = _nic_and_profile(state, nic, bridge, bootproto, addresses)
    port_details = state["details"][port["uuid"]]
    bridge_profile = find_profile(state, bridge, "bridge")
    bridge_details = state["details"].get(bridge_profile["uuid"], {}) if bridge_profile else {}
    already_port = port_details.get("connection.master") in (bridge, (bridge_profile or {}).get("uuid"))
    source = bridge_details if already_port and bridge_profile else port_details
    if bootproto == "inherit" and already_port and not bridge_profile:
        raise ModuleError(
            "%s's profile %s is already a port of %s, but %s has no profile on disk to take the addresses from. "
            "Set host_bridge_bootproto (dhcp or static with addresses)." % (nic, port["name"], bridge, bridge)
        )
    ipv4 = _ip(source, 4, None if bootproto == "inherit" else bootproto, addresses, gateway, dns)
    ipv6 = _ip(source, 6)
    if ipv6["method"] == "manual" and not ipv6["addresses"]:
        ipv6 = {"method": "ignore", "addresses": [], "gateway": "", "dns": []}
    settings = {"ipv4": {"never-default": True}} if source.get("ipv4.never-default") == "yes" else {}
    bridge_name = bridge_profile["name"] if bridge_profile else bridge
    keyfiles = [
        {
            "name": bridge_name,
            "type": "bridge",
            "interface": bridge,
            "cloned_mac_address": mac.upper(),
            "autoconnect": True,
            "stp": bool(stp),
            "forward_delay": int(forward_delay),
            "ipv4": ipv4,
            "ipv6": ipv6,
            "settings": settings,
        },
        {"name": port["name"], "type": "ethernet", "interface": nic, "controller": bridge, "autoconnect": True},
    ]
    running = already_port and _runs(state, device, bridge, port, bridge_profile)
    what = "bridging %s into %s" % (nic, bridge)
    if bootproto != "inherit":
        source_text = "host_bridge_bootproto %s" % bootproto
    else:  # the bridge's details only when it has a profile
        owner, profile = (bridge, bridge_profile) if source is bridge_details and bridge_profile is not None else (nic, port)
        source_text = "%s's profile %s" % (owner, profile["name"])
    return {
        "keyfiles": keyfiles,
        "port_profile": port["name"],
        "port_uuid": port["uuid"],
        "bridge_profile": bridge_name,
        "mac": mac.upper(),
        "runtime_ok": bool(running),
        "ipv4_method": ipv4["method"],
        "what": what,
        "source": source_text,
    }


def _nic_and_profile(state: NmState, nic: str, bridge: str, bootproto: str, addresses: Sequence[str]) -> tuple[dict[str, str], str, dict[str, str]]:
    """(the NIC's device record, its MAC, its profile) after checking the parameters; ModuleError for what is missing."""
    validate_ifname(nic, "nic")
    validate_ifname(bridge, "bridge")
    if bootproto not in BOOTPROTOS:
        raise ModuleError("bootproto must be one of %s, not %r." % (", ".join(BOOTPROTOS), bootproto))
    if bootproto == "static" and not addresses:
        raise ModuleError("bootproto static needs addresses, like [198.18.5.10/24].")
    device = state["devices"].get(nic)
    if device is None:
        raise ModuleError("NetworkManager has no device %s. Name a NIC that `nmcli device` lists." % nic)
    mac = device.get("GENERAL.HWADDR", "")
    if not mac:
        raise ModuleError("NetworkManager reports no MAC address for %s; the bridge needs it to keep the NIC's DHCP lease." % nic)
    port = find_profile(state, nic, "802-3-ethernet")
    if port is None:
        raise ModuleError(
            "%s has no NetworkManager profile on disk (`nmcli -f NAME,DEVICE,FILENAME connection` shows none in "
            "/etc/NetworkManager/system-connections), so there is no configuration to move to %s. Give %s a profile "
            "first (nmcli connection add type ethernet ifname %s ...), or set host_bridge_bootproto with the addresses "
            "it should have." % (nic, bridge, nic, nic)
        )
    return device, mac, port


def _runs(state: NmState, device: Mapping[str, str], bridge: str, port: Mapping[str, str], bridge_profile: Mapping[str, str] | None) -> bool:
    """Whether NetworkManager runs both profiles now (both devices activated with them)."""
    bridge_device = state["devices"].get(bridge) or {}
    return (
        bridge_profile is not None
        and device.get("GENERAL.CON-UUID") == port["uuid"]
        and device.get("GENERAL.STATE", "").startswith("100")
        and bridge_device.get("GENERAL.CON-UUID") == bridge_profile["uuid"]
        and bridge_device.get("GENERAL.STATE", "").startswith("100")
    )


def outcome_message(
    label: str | None,
    what: str,
    failure: str | None = None,
    restored: Mapping[str, str] | None = None,
    checkpoint_gone: bool = False,
    timeout: float | None = None,
    unreachable: bool = False,
) -> str:
    """Word a change that did not stick, for the play's failure message.

    ``failure``: the failed step and its message (None when the change ran but
    was not confirmed); ``restored``: {device: result} of an explicit rollback;
    ``checkpoint_gone``: NetworkManager rolled back by itself at the timeout.
    """
    if failure:
        why = "%s failed: %s" % (what, failure)
    elif unreachable or checkpoint_gone:
        why = "lost connectivity after %s: no fresh SSH connection confirmed the change within %ss" % (
            what,
            timeout if timeout is not None else "the rollback timeout",
        )
    else:
        why = "%s was not confirmed" % what
    if restored is not None:
        parts = ", ".join("%s %s" % (dev, word) for dev, word in sorted(restored.items())) or "no device"
        done = "NetworkManager rolled back its checkpoint at once (%s)" % parts
        failed = [dev for dev, word in restored.items() if word != "restored"]
    elif checkpoint_gone:
        done = "NetworkManager rolled back its checkpoint when the timeout ran out"
        failed = []
    else:
        done = "the checkpoint's outcome is unknown"
        failed = ["?"]
    if failed:
        tail = " Check the host from its console: parts of the restore failed (%s)." % ", ".join(failed)
    else:
        tail = (
            " The profiles on disk and the devices are as before the change, and the host answers again."
            " Check host_bridge_nic, host_bridge_bootproto, host_bridge_addresses and host_bridge_gateway."
        )
    return "%s%s; %s.%s" % (label + ": " if label else "", why, done, tail)


def activation_needed(device: Mapping[str, str] | None, profile_uuid: str) -> bool:
    """Whether NetworkManager must activate the profile ``profile_uuid`` on ``device`` (nmcli's device fields, or None)."""
    if not device:
        return True
    return not (device.get("GENERAL.CON-UUID") == profile_uuid and device.get("GENERAL.STATE", "").startswith("100"))


def activate(run: Runner, profile: str, interface: str, wait: float = 30, check_mode: bool = False, nmcli: str = "nmcli") -> dict[str, Any]:
    """Activate the profile named ``profile`` on ``interface`` unless NetworkManager already runs it there."""
    validate_ifname(interface, "interface")
    rc, out, err = run([nmcli, "-g", "connection.uuid", "connection", "show", "id", profile])
    uuids = [line for line in out.splitlines() if line] if rc == 0 else []
    if len(uuids) != 1:
        raise ModuleError(
            "NetworkManager has %s profile named %s (%s). Write it first (nm_keyfile with reload), or name "
            "one profile." % ("no" if not uuids else "more than one", profile, (err or "").strip() or "nmcli")
        )
    rc, out, _err = run([nmcli, "-g", ",".join(DEVICE_FIELDS), "device", "show", interface])
    device = _values(out, DEVICE_FIELDS) if rc == 0 else None
    if not activation_needed(device, uuids[0]):
        return {"changed": False, "uuid": uuids[0], "msg": "%s is active on %s" % (profile, interface)}
    if not check_mode:
        rc, out, err = run([nmcli, "--wait", str(int(wait)), "connection", "up", "uuid", uuids[0]])
        if rc != 0:
            raise ModuleError("NetworkManager could not activate %s on %s: %s" % (profile, interface, (err or out).strip()))
    return {"changed": True, "uuid": uuids[0], "msg": "activated %s on %s" % (profile, interface)}

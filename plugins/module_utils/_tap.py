# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistent taps: desired state, planning from one link dump, bulk apply.

The flow is params -> desired taps -> one RTM_GETLINK dump (read by _rtnl,
without pyroute2) -> plan (the list of actions, which is also the diff) ->
apply with pyroute2 unless check mode or nothing changes.

How each property is changed:

- bridge, mac, mtu, up: one RTM_NEWLINK (set) per tap, over netlink.
- owner, group, vnet_hdr: the kernel has no netlink call for them; they are
  changed by attaching to the tap (TUNSETIFF with the new flags, then
  TUNSETOWNER/TUNSETGROUP), which the kernel allows only while no process
  holds the tap. The tap keeps its ifindex and bridge port.
- multi_queue: cannot change on an existing tap at all; the tap is deleted and
  created again (with every other property kept), only while no process holds it.

Taps are created with the TUNSETIFF/TUNSETPERSIST ioctls on /dev/net/tun: the
kernel refuses to create tun/tap devices over rtnetlink. Many taps are deleted
in one RTM_DELLINK of a link group, which costs the kernel one batch instead
of one synchronisation per tap.

The pure parts (validation, planning, reading the dump records, naming the
guest from a command line) need neither root nor pyroute2 and are unit-tested.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import grp
import os
import platform
import pwd
import re
import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import ifname_problem, mac_problem
from ansible_collections.kvmhost.bridging.plugins.module_utils._pyroute2_dep import netlink_error
from ansible_collections.kvmhost.bridging.plugins.module_utils._rtnl import RtnlError, dump_links

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from contextlib import AbstractContextManager

    # tap name -> the processes that hold it ({pid, cmdline, guest}), as find_tap_holders returns them
    Holders = Mapping[str, Sequence[Mapping[str, Any]]]
    NetnsKey = tuple[int, int]  # (st_dev, st_ino) of a network namespace

# Properties a user can declare, in the order they are shown.
PROPS = ("bridge", "owner", "group", "multi_queue", "vnet_hdr", "mac", "mtu", "up")
# Set over netlink, always in place.
NETLINK_PROPS = ("bridge", "mac", "mtu", "up")
# Set by attaching to the tap: only while no process holds it.
ATTACH_PROPS = ("owner", "group", "vnet_hdr")
# Need the tap to be created again: only while no process holds it.
REBUILD_PROPS = ("multi_queue",)
# What a new tap gets for the properties the task leaves unset.
CREATE_DEFAULTS = {"multi_queue": False, "vnet_hdr": True, "up": True, "mtu": 1500}

MTU_MIN = 68
MTU_MAX = 65521  # 65535 minus the Ethernet header: the tun driver's max_mtu
ID_MAX = 2**31 - 1
DELETE_GROUP_BASE = 0x4B564D42  # "KVMB": a link group no one else uses
TUN_TYPE_TUN = 1
TUN_TYPE_TAP = 2
IFF_UP = 0x1

# Flags of TUNSETIFF (linux/if_tun.h).
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_MULTI_QUEUE = 0x0100


def _ioctl_numbers(machine: str) -> dict[str, int]:
    """The tun ioctl numbers; their direction bits differ between architectures."""
    write = 0x80000000 if machine.startswith(("ppc", "powerpc", "mips", "sparc", "alpha")) else 0x40000000
    iow_int = write | (4 << 16) | (ord("T") << 8)
    return {
        "TUNSETIFF": iow_int | 202,
        "TUNSETPERSIST": iow_int | 203,
        "TUNSETOWNER": iow_int | 204,
        "TUNSETGROUP": iow_int | 206,
        "TUNGETDEVNETNS": (ord("T") << 8) | 227,
    }


IOCTL = _ioctl_numbers(platform.machine())
SIOCGIFHWADDR = 0x8927
TUN_DEVICE = "/dev/net/tun"
# pidfd_getfd(2): the same number on every architecture that has the unified
# syscall table (x86, arm, arm64, ppc, s390, riscv, loongarch).
SYS_PIDFD_GETFD = 438
_NO_UNIFIED_SYSCALLS = ("mips", "alpha", "ia64")


# ---------------------------------------------------------------- validation


def resolve_id(value: object, what: str) -> tuple[int | None, str | None]:
    """Return ``(id, problem)`` for a user or group given as a name or a number."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return None, "%s must be a name or a number, not %r" % (what, value)
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+", text):
        number = int(text)
        if number > ID_MAX:
            return None, "%s %s is out of range (0 to %d)" % (what, text, ID_MAX)
        return number, None
    try:
        if what == "owner":
            return pwd.getpwnam(text).pw_uid, None
        return grp.getgrnam(text).gr_gid, None
    except KeyError:
        db = "user" if what == "owner" else "group"
        return None, "%s %r: no such %s on this host; create it first or give a numeric id" % (what, text, db)


def build_desired(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Turn the module parameters into a list of desired taps.

    ``params`` holds the top-level options; ``params['taps']`` (a list of
    dicts) or ``params['name']`` names the taps. Top-level options are the
    defaults of every entry of ``taps``. Every problem is collected and raised
    as one ModuleError.
    """
    items = params.get("taps")
    if items is None:
        items = [{"name": params.get("name")}]
        labels = [""]
    else:
        if params.get("mac") is not None and len(items) > 1:
            raise ModuleError("mac cannot be set at the top level together with taps: every tap would get the same MAC. Set mac per entry of taps.")
        labels = ["taps[%d]: " % i for i in range(len(items))]

    problems: list[str] = []
    desired: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    macs: dict[str, str] = {}
    for label, item in zip(labels, items):
        merged: dict[str, Any] = {}
        for key in ("name", "state", *PROPS):
            value = item.get(key)
            merged[key] = params.get(key) if value is None and key != "name" else value
        name = merged["name"]
        where = label + ("%s: " % name if isinstance(name, str) and name else "")
        problem = ifname_problem(name, "tap name", ascii_only=True)
        if problem:
            problems.append(where + problem)
            continue
        if name in seen:
            problems.append("%s%s is listed twice (also %s); list each tap once" % (label, name, seen[name] or "name"))
            continue
        seen[name] = label.rstrip(": ")
        state = merged["state"] or "present"
        if state not in ("present", "absent"):
            problems.append(where + "state must be present or absent, not %r" % state)
            continue
        tap: dict[str, Any] = {"name": name, "state": state}
        if state == "present":
            tap.update(_desired_props(merged, where, problems, macs))
        desired.append(tap)
    if problems:
        raise ModuleError("; ".join(problems), problems=problems)
    return desired


def _desired_props(merged: Mapping[str, Any], where: str, problems: list[str], macs: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bridge = merged["bridge"]
    if bridge not in (None, ""):
        problem = ifname_problem(bridge, "bridge name", ascii_only=True)
        if problem:
            problems.append(where + problem)
    if bridge == merged["name"]:
        problems.append(where + "a tap cannot be its own bridge")
    out["bridge"] = bridge
    for key in ("owner", "group"):
        out[key], problem = resolve_id(merged[key], key)
        if problem:
            problems.append(where + problem)
    out["mac"] = None
    if merged["mac"] is not None:
        out["mac"], problem = mac_problem(merged["mac"])
        if problem:
            problems.append(where + problem)
        elif out["mac"] in macs:
            problems.append(where + "mac %s is also given to %s; two guests with one MAC break each other's traffic" % (out["mac"], macs[out["mac"]]))
        else:
            macs[out["mac"]] = merged["name"]
    mtu = merged["mtu"]
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not MTU_MIN <= mtu <= MTU_MAX):
        problems.append(where + "mtu %r is out of range; a tap takes %d to %d" % (mtu, MTU_MIN, MTU_MAX))
    out["mtu"] = mtu
    for key in ("multi_queue", "vnet_hdr", "up"):
        out[key] = None if merged[key] is None else bool(merged[key])
    return out


# ----------------------------------------------------------- the link dump


def is_tap(rec: Mapping[str, Any]) -> bool:
    return rec["kind"] == "tun" and rec["tun"] is not None and rec["tun"]["type"] == TUN_TYPE_TAP


def is_held(rec: Mapping[str, Any]) -> bool:
    """Whether a process holds the tap: the kernel turns the carrier on while a queue is attached."""
    tun = rec["tun"] or {}
    return bool(rec["carrier"] or tun.get("num_queues") or tun.get("num_disabled_queues"))


def describe_kind(rec: Mapping[str, Any]) -> str:
    kind = rec["kind"]
    if kind is None:
        return "a physical or kernel device"
    if kind == "tun":
        if rec["tun"] is None:
            return "a tun/tap device whose attributes the kernel does not report (Linux >= 4.15 is needed)"
        return "a tap" if rec["tun"]["type"] == TUN_TYPE_TAP else "a tun (layer 3) device"
    return "a %s device" % kind


def tap_view(rec: Mapping[str, Any], by_index: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The declared properties of an existing tap, as the task compares them."""
    master = by_index.get(rec["master"]) if rec["master"] else None
    tun = rec["tun"]
    return {
        "bridge": master["name"] if master else None,
        "owner": tun["owner"],
        "group": tun["group"],
        "multi_queue": tun["multi_queue"],
        "vnet_hdr": tun["vnet_hdr"],
        "mac": rec["mac"],
        "mtu": rec["mtu"],
        "up": rec["up"],
    }


# ------------------------------------------------------------------ planning


@dataclass
class TapStep:
    """One tap the task creates, changes, re-creates or deletes."""

    action: str  # create, update, recreate or delete
    name: str
    before: dict[str, Any] | None  # tap_view() of the tap now, None when it does not exist
    after: dict[str, Any] | None  # what it becomes, None when deleted
    changes: list[str]  # the PROPS that change
    index: int | None  # its ifindex now, None when it does not exist
    netlink: dict[str, Any] = field(default_factory=dict)  # what is set over netlink after create/attach
    held: bool = False  # a deleted tap that a process holds open


@dataclass
class Plan:
    """The actions one task takes; also the diff and the predicted result."""

    steps: list[TapStep] = field(default_factory=list)
    taps: list[dict[str, Any]] = field(default_factory=list)  # the state of every present tap after the plan
    blocked: list[tuple[str, list[str], dict[str, Any]]] = field(default_factory=list)  # (name, changed attach/rebuild keys, record)

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def actions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for step in self.steps:
            action: dict[str, Any] = {"action": step.action, "name": step.name}
            # Proven by plan_taps: every step but a delete has ``after``, every step but a create ``before``.
            before, after = cast("dict[str, Any]", step.before), cast("dict[str, Any]", step.after)
            if step.action in ("update", "recreate"):
                action["changes"] = {k: {"before": before[k], "after": after[k]} for k in step.changes}
            if step.action in ("create", "recreate"):
                action["after"] = dict(after)
            if step.action == "delete":
                action["before"] = dict(before)
                action["held"] = step.held
            out.append(action)
        return out

    def diff(self) -> dict[str, Any]:
        before: dict[str, dict[str, Any]] = {}
        after: dict[str, dict[str, Any]] = {}
        for step in self.steps:
            if step.before is not None:
                before[step.name] = step.before
            if step.after is not None:
                after[step.name] = step.after
        return {"before": {"taps": before}, "after": {"taps": after}}


def plan_taps(desired: list[dict[str, Any]], links: list[dict[str, Any]]) -> Plan:
    """Plan ``desired`` taps against ``links`` (link records of one dump).

    Raises ModuleError for anything the task cannot do (names that are not
    taps, missing bridges). Changes that need a tap nobody holds are put in
    ``plan.blocked``; the caller names the holders and fails.
    """
    by_name = {rec["name"]: rec for rec in links}
    by_index = {rec["index"]: rec for rec in links}
    plan = Plan()
    problems: list[str] = []
    for want in desired:
        name = want["name"]
        cur = by_name.get(name)
        if cur is not None and not is_tap(cur):
            verb = "remove" if want["state"] == "absent" else "manage"
            problems.append("%s exists and is %s, not a tap; refusing to %s it. Choose another name for the tap." % (name, describe_kind(cur), verb))
            continue
        if want["state"] == "absent":
            if cur is not None:
                plan.steps.append(TapStep("delete", name, tap_view(cur, by_index), None, list(PROPS), cur["index"], held=is_held(cur)))
            continue
        problem = _bridge_problem(name, want["bridge"], by_name, links)
        if problem:
            problems.append(problem)
        elif cur is None:
            _plan_create(plan, name, want)
        else:
            _plan_change(plan, name, want, cur, by_index)
    if problems:
        raise ModuleError("; ".join(problems), problems=problems)
    return plan


def _bridge_problem(name: str, bridge: str | None, by_name: dict[str, dict[str, Any]], links: list[dict[str, Any]]) -> str | None:
    """Why tap ``name`` cannot join ``bridge`` (missing, or not a Linux bridge), or None."""
    if not bridge:
        return None
    brec = by_name.get(bridge)
    if brec is None:
        return "%s: bridge %s does not exist; create it first (kvmhost.bridging.bridge) or correct the name. Existing bridges: %s" % (
            name,
            bridge,
            ", ".join(sorted(r["name"] for r in links if r["kind"] == "bridge")) or "none",
        )
    if brec["kind"] != "bridge":
        return "%s: %s is %s, not a bridge; a tap can only join a Linux bridge" % (name, bridge, describe_kind(brec))
    return None


def _plan_create(plan: Plan, name: str, want: dict[str, Any]) -> None:
    """A tap that does not exist yet: created with the wanted properties and defaults for the rest."""
    after: dict[str, Any] = {}
    for key in PROPS:
        value = want[key]
        after[key] = CREATE_DEFAULTS.get(key) if value is None else value
    after["bridge"] = want["bridge"] or None
    plan.steps.append(TapStep("create", name, None, after, list(PROPS), None, _fresh_netlink(after)))
    plan.taps.append(dict(after, name=name))


def _plan_change(plan: Plan, name: str, want: dict[str, Any], cur: dict[str, Any], by_index: dict[int, dict[str, Any]]) -> None:
    """An existing tap: updated in place, re-attached, or re-created when a property needs it."""
    bridge = want["bridge"]
    before = tap_view(cur, by_index)
    after = dict(before)
    for key in PROPS:
        if want[key] is not None:
            after[key] = want[key]
    after["bridge"] = before["bridge"] if bridge is None else (bridge or None)
    changes = [key for key in PROPS if after[key] != before[key]]
    plan.taps.append(dict(after, name=name))
    if not changes:
        return
    offline = [key for key in changes if key in ATTACH_PROPS or key in REBUILD_PROPS]
    if offline and is_held(cur):
        plan.blocked.append((name, offline, cur))
    if any(key in REBUILD_PROPS for key in changes):
        action, netlink = "recreate", _fresh_netlink(after)
    else:
        action, netlink = "update", {key: after[key] for key in changes if key in NETLINK_PROPS}
    plan.steps.append(TapStep(action, name, before, after, changes, cur["index"], netlink))


def _fresh_netlink(after: Mapping[str, Any]) -> dict[str, Any]:
    """What a tap that has just been made needs over netlink to reach ``after``."""
    netlink: dict[str, Any] = {}
    if after["mac"] is not None:
        netlink["mac"] = after["mac"]
    if after["mtu"] != CREATE_DEFAULTS["mtu"]:
        netlink["mtu"] = after["mtu"]
    if after["bridge"]:
        netlink["bridge"] = after["bridge"]
    if after["up"]:
        netlink["up"] = True
    return netlink


def blocked_message(blocked: Iterable[tuple[str, list[str], dict[str, Any]]], holders: Holders) -> str:
    """One message for every change that waits for a process to let go of its tap."""
    parts: list[str] = []
    for name, keys, _rec in blocked:
        owners = holders.get(name) or []
        who = ", ".join(describe_holder(h) for h in owners) if owners else "a process this host does not show (the tap's carrier is up)"
        how = "recreating the tap" if any(k in REBUILD_PROPS for k in keys) else "attaching to the tap"
        parts.append("%s: %s cannot change in place (it needs %s) and the tap is held by %s" % (name, " and ".join(keys), how, who))
    return "; ".join(parts) + ". Stop that process (shut the guest down) and run the task again, or leave those properties as they are."


def describe_holder(holder: Mapping[str, Any]) -> str:
    text = "pid %d (%s)" % (holder["pid"], _shorten(holder["cmdline"] or "?", 80))
    if holder.get("guest"):
        text += " of guest %s" % holder["guest"]
    return text


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# ------------------------------------------------------------------- holders


def _split_qemu_opts(value: str) -> list[str]:
    """Split a QEMU option string on commas; ',,' stands for a literal comma."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == ",":
            if value[i + 1 : i + 2] == ",":
                current.append(",")
                i += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def guest_name(argv: Sequence[str]) -> str | None:
    """The guest name from a QEMU command line (``-name guest=web01,...`` or ``-name web01``), or None."""
    for i, arg in enumerate(argv):
        if arg in ("-name", "--name"):
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
        elif arg.startswith(("-name=", "--name=")):
            value = arg.split("=", 1)[1]
        else:
            continue
        for j, part in enumerate(_split_qemu_opts(value)):
            key, sep, rest = part.partition("=")
            if sep and key == "guest":
                return rest or None
            if not sep and j == 0 and part:
                return part
        return None
    return None


def _netns_key(path: str) -> NetnsKey:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


class _PidFd:
    """Duplicates another process's fd (pidfd_getfd, Linux >= 5.6) to ask the tap's netns."""

    def __init__(self) -> None:
        self.usable = hasattr(os, "pidfd_open") and not platform.machine().startswith(_NO_UNIFIED_SYSCALLS)
        self._libc: ctypes.CDLL | None = None

    def tap_netns(self, pid: int, fd: int) -> NetnsKey | None:
        """The (dev, ino) of the netns of the tap behind ``pid``'s ``fd``, or None when it cannot tell."""
        if not self.usable:
            return None
        if self._libc is None:
            try:
                self._libc = ctypes.CDLL(None, use_errno=True)
            except OSError:
                self.usable = False
                return None
        pidfd = dupfd = nsfd = -1
        try:
            pidfd = os.pidfd_open(pid)
            dupfd = self._libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
            if dupfd < 0:
                if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM):
                    self.usable = False
                return None
            nsfd = fcntl.ioctl(dupfd, IOCTL["TUNGETDEVNETNS"])
            st = os.fstat(nsfd)
            return (st.st_dev, st.st_ino)
        except OSError:
            return None
        finally:
            for one in (nsfd, dupfd, pidfd):
                if one >= 0:
                    os.close(one)


def _read_iff(path: str) -> str | None:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("iff:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _read_argv(pid: int, proc: str) -> list[str]:
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def find_tap_holders(
    names: Iterable[str] | None = None,
    proc: str = "/proc",
    netns_of: Callable[[int, int], NetnsKey | None] | None = None,
    own_netns: NetnsKey | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Map tap name -> holders, for taps of this network namespace.

    A holder is ``{pid, cmdline, guest}``; each process is listed once per
    tap, lowest pid first. The scan reads /proc/<pid>/fd (links to
    /dev/net/tun) and fdinfo (``iff: vnet0``). /proc shows the processes of
    every network namespace, and a tap name is only unique within one, so a
    holder counts only when its tap is in this namespace: asked through
    pidfd_getfd and TUNGETDEVNETNS, or, where the kernel cannot tell, when the
    process runs in this namespace. ``netns_of(pid, fd)`` and ``own_netns``
    replace those look-ups in tests.
    """
    if own_netns is None:
        try:
            own_netns = _netns_key("/proc/self/ns/net")
        except OSError:
            own_netns = None
    if netns_of is None:
        netns_of = _NetnsOf(proc)
    wanted = set(names) if names is not None else None
    candidates: list[tuple[int, int, str]] = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        fddir = os.path.join(proc, entry, "fd")
        try:
            fds = os.listdir(fddir)
        except OSError:
            continue
        for fd_name in fds:
            try:
                target = os.readlink(os.path.join(fddir, fd_name))
            except OSError:
                continue
            if not target.startswith(TUN_DEVICE):
                continue
            iff = _read_iff(os.path.join(proc, entry, "fdinfo", fd_name))
            if iff and (wanted is None or iff in wanted):
                candidates.append((int(entry), int(fd_name), iff))
    found: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[int, str]] = set()
    for pid, fd, iff in sorted(candidates):
        if (pid, iff) in seen:
            continue
        tap_ns = netns_of(pid, fd)
        if tap_ns is None or (own_netns is not None and tap_ns != own_netns):
            continue
        seen.add((pid, iff))
        argv = _read_argv(pid, proc)
        found.setdefault(iff, []).append({"pid": pid, "cmdline": " ".join(argv), "guest": guest_name(argv)})
    return found


class _NetnsOf:
    """The netns of the tap behind a process's fd: exact through pidfd_getfd, else the process's own netns."""

    def __init__(self, proc: str) -> None:
        self.proc = proc
        self.pidfd = _PidFd()

    def __call__(self, pid: int, fd: int) -> NetnsKey | None:
        key = self.pidfd.tap_netns(pid, fd)
        if key is not None:
            return key
        try:
            return _netns_key(os.path.join(self.proc, str(pid), "ns", "net"))
        except OSError:
            return None


# --------------------------------------------------------------------- apply


def _tun_attach(name: str, flags_after: Mapping[str, Any], owner: int | None, group: int | None) -> str | None:
    """Create the tap ``name`` or attach to it, set owner/group, make it persistent; return its MAC."""
    flags = IFF_TAP | IFF_NO_PI
    if flags_after["vnet_hdr"]:
        flags |= IFF_VNET_HDR
    if flags_after["multi_queue"]:
        flags |= IFF_MULTI_QUEUE
    ifr = struct.pack("16sH22x", name.encode("ascii"), flags)
    fd = os.open(TUN_DEVICE, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.ioctl(fd, IOCTL["TUNSETIFF"], ifr)
        if owner is not None:
            fcntl.ioctl(fd, IOCTL["TUNSETOWNER"], owner)
        if group is not None:
            fcntl.ioctl(fd, IOCTL["TUNSETGROUP"], group)
        fcntl.ioctl(fd, IOCTL["TUNSETPERSIST"], 1)
        try:
            res = fcntl.ioctl(fd, SIOCGIFHWADDR, struct.pack("16s24x", name.encode("ascii")))
            return ":".join("%02x" % b for b in bytearray(res[18:24]))
        except OSError:
            return None
    finally:
        os.close(fd)


def _free_group(links: Iterable[Mapping[str, Any]]) -> int:
    used = {rec["group"] for rec in links}
    group = DELETE_GROUP_BASE
    while group in used:
        group += 1
    return group


def delete_links(ip: Any, indexes: Sequence[int], links: Iterable[Mapping[str, Any]]) -> None:
    """Delete links: one RTM_DELLINK for one link, one link group for many."""
    if len(indexes) == 1:
        ip.link("del", index=indexes[0])
        return
    group = _free_group(links)
    for index in indexes:
        ip.link("set", index=index, group=group)
    try:
        ip.link("del", group=group)
    except netlink_error() as exc:
        if getattr(exc, "code", None) not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        for index in indexes:  # a kernel without group deletion
            ip.link("del", index=index)


class ApplyError(Exception):
    def __init__(self, stage: str, name: str, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.stage = stage
        self.name = name
        self.exc = exc


def apply_plan(ip: Any, plan: Plan, links: Sequence[Mapping[str, Any]]) -> None:
    """Apply ``plan`` with the IPRoute ``ip``; fill in what only the kernel knows (MACs of new taps)."""
    by_name = {rec["name"]: rec for rec in links}
    gone = [step for step in plan.steps if step.action in ("delete", "recreate")]
    if gone:
        try:
            # Proven by plan_taps: a deleted or re-created tap exists, so its step has its ifindex.
            delete_links(ip, [cast(int, step.index) for step in gone], links)
        except (netlink_error(), OSError) as exc:
            raise ApplyError("delete", ", ".join(step.name for step in gone[:5]) + (", ..." if len(gone) > 5 else ""), exc) from exc
    after_by_name = {tap["name"]: tap for tap in plan.taps}
    for step in plan.steps:
        name = step.name
        after = step.after
        if after is None:  # a deleted tap: nothing to create or attach
            continue
        try:
            if step.action in ("create", "recreate"):
                stage = "create"
                mac = _tun_attach(name, after, after["owner"], after["group"])
                if after["mac"] is None and mac:
                    after["mac"] = mac
                    after_by_name[name]["mac"] = mac
            elif step.action == "update" and any(key in ATTACH_PROPS for key in step.changes):
                stage = "attach"
                _tun_attach(name, after, after["owner"], after["group"])
        except OSError as exc:
            raise ApplyError(stage, name, exc) from exc
    for step in plan.steps:
        request: dict[str, Any] = {}
        for key, value in step.netlink.items():
            if key == "mac":
                request["address"] = value
            elif key == "mtu":
                request["mtu"] = value
            elif key == "bridge":
                request["master"] = by_name[value]["index"] if value else 0
            elif key == "up":
                request["state"] = "up" if value else "down"
        if not request:
            continue
        name = step.name
        try:
            index = step.index if step.action == "update" else socket.if_nametoindex(name)
            ip.link("set", index=index, **request)
        except (netlink_error(), OSError) as exc:
            raise ApplyError("setting " + ", ".join(sorted(step.netlink)), name, exc) from exc


# ------------------------------------------------------------------- the task


def run(
    params: Mapping[str, Any],
    check_mode: bool,
    ip_factory: Callable[[], AbstractContextManager[Any]] | None,
    dump: list[dict[str, Any]] | None = None,
    reader: Callable[[], list[dict[str, Any]]] = dump_links,
) -> dict[str, Any]:
    """Plan and (unless ``check_mode``) apply the tap task; return the result dict.

    The links are read by ``reader`` (the standard-library netlink dump; a
    list of link records); ``ip_factory`` returns an IPRoute (a context
    manager) and is called only when there is something to change. ``dump``
    (tests) replaces the read with a list of link records and applies nothing.
    """
    desired = build_desired(params)
    if dump is not None:
        return _finish(desired, dump, check_mode, None)
    try:
        links = reader()
    except (RtnlError, OSError) as exc:
        raise ModuleError("reading the links over netlink failed: %s" % exc) from exc
    return _finish(desired, links, check_mode, ip_factory)


def _finish(
    desired: list[dict[str, Any]], links: list[dict[str, Any]], check_mode: bool, ip_factory: Callable[[], AbstractContextManager[Any]] | None
) -> dict[str, Any]:
    plan = plan_taps(desired, links)
    if plan.blocked:
        holders = find_tap_holders([name for name, _keys, _rec in plan.blocked])
        raise ModuleError(blocked_message(plan.blocked, holders), changed=False, actions=plan.actions())
    if plan.changed and not check_mode and ip_factory is not None:
        with ip_factory() as ip:
            try:
                apply_plan(ip, plan, links)
            except ApplyError as exc:
                raise ModuleError(
                    "%s: %s failed: %s. Changes made before this point stay; fix the cause and run the task again." % (exc.name, exc.stage, _explain(exc.exc)),
                    changed=True,
                    actions=plan.actions(),
                ) from exc
    return {"changed": plan.changed, "actions": plan.actions(), "diff": plan.diff(), "taps": plan.taps}


def _explain(exc: BaseException) -> str:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    if code:
        return "%s (errno %d)" % (os.strerror(code), code)
    return str(exc)

# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DHCP clients that hold a NIC's lease: find them, and move them to the bridge with the lease.

When the bridge module moves a NIC's addresses to a bridge, the DHCP client
that leased them must move too: left on the NIC (now a bridge port) it puts
the address back on the port at its first renewal, and nothing renews the
copy on the bridge, which expires with the old lease.

The layers:

- reading: find_clients() lists the dhclient, dhcpcd and udhcpc processes
  bound to given interfaces, from /proc (their command lines, as the host's
  network scripts started them: initscripts' ``dhclient -1 -q -lf
  /var/lib/dhclient/dhclient--eth0.lease -pf /var/run/dhclient-eth0.pid
  eth0``, for example);
- planning, pure: parse_client() reads one command line; moved_argv() is the
  same command for the bridge (interface, and the pid and lease file names
  that carry the interface's name); lease_move() says which lease file to
  carry over, and how its content changes;
- applying: stop_client() ends the processes that run exactly a command line
  (SIGTERM: dhclient, dhcpcd and udhcpc then leave the address and the lease
  as they are, without a release), start_client() starts one, carrying the
  lease over first, and waits until it has its lease (the clients fork to the
  background once bound) or has started (a client that stays in the
  foreground).

NetworkManager and systemd-networkd run their DHCP clients inside the daemon:
they handle the move themselves once a profile of theirs owns the bridge.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from socket import AF_INET, AF_INET6
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import atomic_write, read_bytes
from ansible_collections.kvmhost.bridging.plugins.module_utils._process import CommandTimeout, run_bounded, start_detached

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

CLIENT_NAMES = ("dhclient", "dhcpcd", "udhcpc", "udhcpc6")

# Options that take a value, per client (everything else is a flag or the interface).
_VALUE_OPTIONS = {
    "dhclient": {"-p", "-s", "-g", "-cf", "-df", "-lf", "-pf", "-sf", "-e", "-n", "--prefix-len-hint", "--decline-wait-time",
                 "--address-prefix-len", "--timeout", "-timeout", "-I", "-D", "-C", "-H", "-F", "-V", "-c", "--dad-wait-time"},
    "dhcpcd": {"-c", "--script", "-e", "--env", "-f", "--config", "-h", "--hostname", "-i", "--vendorclassid", "-j", "--logfile",
               "-l", "--leasetime", "-m", "--metric", "-o", "--option", "-r", "--request", "-s", "--inform", "-S", "--static",
               "-t", "--timeout", "-u", "--userclass", "-v", "--vendor", "-y", "--reboot", "-O", "--nooption", "-Q", "--require",
               "-x", "--exit", "-z", "--allowinterfaces", "-Z", "--denyinterfaces", "-C", "--nohook", "-F", "--fqdn", "-I",
               "--clientid"},
    "udhcpc": {"-i", "--interface", "-s", "--script", "-p", "--pidfile", "-r", "--request", "-t", "--retries", "-T", "--timeout",
               "-A", "--tryagain", "-O", "--request-option", "-x", "-V", "--vendorclass", "-F", "--fqdn", "-H", "-h",
               "--hostname", "-c", "--clientid", "-S", "-P", "--client-port", "-a"},
}  # fmt: skip
_VALUE_OPTIONS["udhcpc6"] = _VALUE_OPTIONS["udhcpc"]
_FOREGROUND = {"dhclient": {"-d"}, "dhcpcd": {"-B", "--nobackground"}, "udhcpc": {"-f", "--foreground"}}
_FOREGROUND["udhcpc6"] = _FOREGROUND["udhcpc"]
START_TIMEOUT = 90  # seconds a client may take to get its lease before it goes to the background
STOP_TIMEOUT = 10


@dataclass(frozen=True)
class DhcpClient:
    """One running DHCP client: its program name, PID, command line and the interface it serves."""

    name: str
    pid: int
    argv: tuple[str, ...]
    interface: str
    family: int = AF_INET
    pidfile: str | None = None
    leasefile: str | None = None

    @property
    def foreground(self) -> bool:
        return any(arg in _FOREGROUND.get(self.name, ()) for arg in self.argv[1:])

    def describe(self) -> str:
        return "%s on %s (pid %d: %s)" % (self.name, self.interface, self.pid, " ".join(self.argv))


def _program(argv0: str | None) -> str:
    return os.path.basename(argv0 or "")


def _split(argv: Sequence[str], name: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(options as (option, value or None) pairs, positional arguments) of a client's command line."""
    takes_value = _VALUE_OPTIONS[name]
    options: list[tuple[str, str | None]] = []
    positional: list[str] = []
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-") and "=" in arg and arg.split("=", 1)[0] in takes_value:
            key, value = arg.split("=", 1)
            options.append((key, value))
        elif arg in takes_value and index + 1 < len(argv):
            options.append((arg, argv[index + 1]))
            index += 1
        elif arg.startswith("-"):
            options.append((arg, None))
        else:
            positional.append(arg)
        index += 1
    return options, positional


def parse_client(argv: Iterable[str], pid: int = 0) -> DhcpClient | None:
    """The DhcpClient a command line runs, or None when it is no DHCP client bound to one interface.

    A client started for all interfaces (no interface named), or for several,
    is not one this module can move: it is reported by find_clients() callers
    only through the address it leaves unrenewed.
    """
    argv = tuple(argv)
    if not argv:
        return None
    name = _program(argv[0])
    if name not in CLIENT_NAMES:
        return None
    options, positional = _split(argv, name)
    values = dict(options)
    family = AF_INET
    if name == "dhclient" and "-6" in values:
        family = AF_INET6
    if name == "udhcpc6" or (name == "dhcpcd" and ("-6" in values or "--ipv6only" in values)):
        family = AF_INET6
    # udhcpc names its interface with -i (a trailing -i without a value names none)
    interfaces = [v for k, v in options if k in ("-i", "--interface") and v is not None] if name in ("udhcpc", "udhcpc6") else positional
    if len(interfaces) != 1:
        return None
    pidfile = values.get("-pf") if name == "dhclient" else values.get("-p") or values.get("--pidfile")
    leasefile = values.get("-lf") if name == "dhclient" else None
    if name == "dhclient" and leasefile is None:
        leasefile = "/var/lib/dhcp/dhclient6.leases" if family == AF_INET6 else "/var/lib/dhcp/dhclient.leases"
    if name == "dhcpcd":
        leasefile = "/var/lib/dhcpcd/%s%s.lease" % (interfaces[0], "6" if family == AF_INET6 else "")
    return DhcpClient(name, pid, argv, interfaces[0], family, pidfile, leasefile)


def _renamed(path: str, old: str, new: str) -> str:
    """``path`` with the interface name ``old`` in its file name replaced by ``new`` (as initscripts name them)."""
    if not path:
        return path
    directory, base = os.path.split(path)
    pattern = re.compile(r"(?<![A-Za-z0-9])%s(?![A-Za-z0-9])" % re.escape(old))
    return os.path.join(directory, pattern.sub(new, base))


def moved_argv(client: DhcpClient, new: str) -> tuple[str, ...]:
    """The client's command line for interface ``new``: the interface, and file names that carry the old name."""
    old = client.interface
    argv = [client.argv[0]]
    file_options = {"-pf", "-lf", "-p", "--pidfile"}
    index = 1
    args = list(client.argv)
    while index < len(args):
        arg = args[index]
        value_option = arg in _VALUE_OPTIONS[client.name] and index + 1 < len(args)
        if value_option:
            value = args[index + 1]
            if arg in ("-i", "--interface") and value == old:
                value = new
            elif arg in file_options:
                value = _renamed(value, old, new)
            argv += [arg, value]
            index += 2
            continue
        if "=" in arg and arg.split("=", 1)[0] in ("-i", "--interface", "--pidfile"):
            key, value = arg.split("=", 1)
            argv.append("%s=%s" % (key, new if key != "--pidfile" else _renamed(value, old, new)))
        elif arg == old and not arg.startswith("-"):
            argv.append(new)
        else:
            argv.append(arg)
        index += 1
    return tuple(argv)


def lease_move(client: DhcpClient, new: str) -> tuple[str | None, str | None] | None:
    """(source, destination) of the lease file to carry over to interface ``new``, or None.

    dhclient: the ``-lf`` file when its name carries the interface (initscripts'
    dhclient--eth0.lease); a shared file (dhclient.leases) stays where it is,
    and its lease for the old interface is copied under the new name by
    lease_content(). dhcpcd: /var/lib/dhcpcd/<interface>.lease.
    """
    if client.name not in ("dhclient", "dhcpcd"):
        return None
    source = client.leasefile
    return (source, None if source is None else _renamed(source, client.interface, new))


def lease_content(name: str, data: bytes, old: str | None, new: str | None) -> bytes:
    """The lease file ``data`` for interface ``new``: dhclient's ``interface "eth0";`` lines name the new interface.

    Everything else stays, the DHCPv6 ``default-duid`` line too: with the same
    DUID (DHCPv6) and the same MAC (DHCPv4) the server renews the same address.
    """
    if name != "dhclient":
        return data
    text = data.decode("utf-8", "surrogateescape")
    return text.replace('interface "%s";' % old, 'interface "%s";' % new).encode("utf-8", "surrogateescape")


def _cmdline(proc: str, pid: int | str) -> tuple[str, ...] | None:
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    if not data:
        return None
    return tuple(part.decode("utf-8", "surrogateescape") for part in data.rstrip(b"\0").split(b"\0"))


def _pids(proc: str) -> list[int]:
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def _netns(proc: str, pid: int | str) -> str | None:
    try:
        return os.readlink(os.path.join(proc, str(pid), "ns", "net"))
    except OSError:
        return None


def find_clients(interfaces: Iterable[str] | None, proc: str = "/proc") -> list[DhcpClient]:
    """The DHCP clients bound to one of ``interfaces`` (None: any), from the command lines of the running processes.

    Only processes in this process's network namespace: an interface name
    means something only there (another namespace, a container's, has its own
    eth0 and its own clients, never to be stopped from here).
    """
    wanted = None if interfaces is None else set(interfaces)
    here = _netns(proc, "self")
    found: list[DhcpClient] = []
    for pid in _pids(proc):
        if _netns(proc, pid) != here:
            continue
        argv = _cmdline(proc, pid)
        client = parse_client(argv, pid) if argv else None
        if client is not None and (wanted is None or client.interface in wanted):
            found.append(client)
    return found


def stop_client(
    argv: Iterable[str],
    proc: str = "/proc",
    timeout: float = STOP_TIMEOUT,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[int]:
    """End every process that runs exactly ``argv`` with SIGTERM, and wait until they are gone; return their PIDs.

    SIGTERM, not the clients' own release: dhclient, dhcpcd and udhcpc exit
    on it and leave the address and the lease as they are.
    """
    argv = tuple(argv)
    here = _netns(proc, "self")
    pids = [pid for pid in _pids(proc) if _cmdline(proc, pid) == argv and pid != os.getpid() and _netns(proc, pid) == here]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = clock() + timeout
    while any(_cmdline(proc, pid) == argv for pid in pids):
        if clock() >= deadline:
            raise ModuleError("The DHCP client %s (pid %s) did not end within %ds of SIGTERM." % (" ".join(argv), ", ".join(map(str, pids)), timeout))
        sleep(0.05)
    return pids


def _executable(argv0: str) -> str:
    if os.path.isabs(argv0):
        return argv0
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"):
        path = os.path.join(directory, argv0)
        if os.access(path, os.X_OK):
            return path
    raise ModuleError("Cannot find the DHCP client program %s to start it again." % argv0)


IFA_F_TENTATIVE = 0x40
LINK_LOCAL_TIMEOUT = 15  # seconds for duplicate address detection of a new link-local address (1 s by default)


def link_local_ready(interface: str, path: str = "/proc/net/if_inet6") -> bool:
    """True if ``interface`` has an IPv6 link-local address that duplicate address detection has passed."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5] == interface and fields[0].startswith("fe80") and not int(fields[4], 16) & IFA_F_TENTATIVE:
            return True
    return False


def start_client(
    argv: Iterable[str],
    lease: Sequence[str | None] | None = None,
    module: Any = None,
    timeout: float = START_TIMEOUT,
    old: str | None = None,
    new: str | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Start ``argv``; first copy the lease file (``lease``: (source, destination)) for the new interface.

    A client that goes to the background once bound is waited for; one that
    stays in the foreground is started in a session of its own and left running.
    """
    argv = tuple(argv)
    client = parse_client(argv)
    if client is None:
        raise ModuleError("%s is not a DHCP client command line this module can start." % " ".join(argv))
    if lease and module is not None and lease[0] is not None and lease[1] is not None and lease[0] != lease[1]:
        data = read_bytes(lease[0])
        if data is not None:
            atomic_write(module, lease[1], lease_content(client.name, data, old, new), new_mode=0o644)
    if client.family == AF_INET6:
        # A DHCPv6 client speaks from the link-local address: a bridge made a moment ago is still checking it.
        deadline = clock() + LINK_LOCAL_TIMEOUT
        while not link_local_ready(client.interface) and clock() < deadline:
            sleep(0.1)
    # The same argv[0] as before, so that the command line (what stop_client() matches) is the planned one.
    program = _executable(argv[0])
    if client.foreground:
        start_detached(program, argv)
        return
    if module is None:
        raise ModuleError("Starting %s needs the module's run_command." % " ".join(argv))
    try:
        rc, out, err = run_bounded(module, argv, timeout, executable=program)
    except CommandTimeout as exc:
        raise ModuleError("The DHCP client %s did not get a lease within %ds." % (" ".join(argv), timeout)) from exc
    if rc != 0:
        output = ((out or "") + (err or "")).strip().splitlines()[-3:]
        raise ModuleError("The DHCP client %s failed (exit %d): %s" % (" ".join(argv), rc, " / ".join(output) or "no output"))


# --------------------------------------------------------------------------
# The doctor's checks: a client on a bridge port, a lease on a bridge that nothing renews
# --------------------------------------------------------------------------
DAEMONS = ("NetworkManager", "systemd-networkd")


def _fix_command(client: DhcpClient, bridge: str) -> str:
    return " ".join(moved_argv(client, bridge))


def find_daemons(proc: str = "/proc") -> list[str]:
    """The names of the network daemons (DAEMONS) running in this network namespace."""
    here = _netns(proc, "self")
    found: set[str] = set()
    for pid in _pids(proc):
        argv = _cmdline(proc, pid)
        if argv and _program(argv[0]) in DAEMONS and _netns(proc, pid) == here:
            found.add(_program(argv[0]))
    return sorted(found)


def client_info(client: DhcpClient) -> dict[str, Any]:
    """A DHCP client as the modules return it."""
    return {"pid": client.pid, "name": client.name, "interface": client.interface,
            "family": "ipv6" if client.family == AF_INET6 else "ipv4", "argv": list(client.argv)}  # fmt: skip


def doctor_problems(
    links: Sequence[Mapping[str, Any]], processes: Iterable[Mapping[str, Any]], daemons: Iterable[str] = (), skip: Collection[str] = ()
) -> list[dict[str, str]]:
    """The doctor's DHCP problems, as dicts (check, subject, problem, fix).

    ``links``: ``ip -j addr show`` (name, master, addr_info with lifetimes);
    ``processes``: the DHCP clients as dicts with ``pid`` and ``argv`` (what
    the dhcp_client_info module returns); ``daemons``: NetworkManager and
    systemd-networkd when they run: they renew their leases themselves.
    Checks: ``dhcp_port``, a DHCP client bound to a bridge port;
    ``dhcp_expiry``, a bridge address with a lifetime that no client on the
    bridge renews.
    """
    clients = [c for c in (parse_client(p.get("argv") or (), int(p.get("pid") or 0)) for p in processes) if c is not None]
    masters = {link.get("ifname"): link.get("master") for link in links}
    bridges = {master for master in masters.values() if master}
    bridges.update(link.get("ifname") for link in links if (link.get("linkinfo") or {}).get("info_kind") == "bridge")
    problems: list[dict[str, str]] = []
    for client in clients:
        bridge = masters.get(client.interface)
        if "dhcp_port" in skip or not bridge:
            continue
        problems.append({
            "check": "dhcp_port",
            "subject": client.interface,
            "problem": "%s (pid %d) runs on %s, a port of %s: at its next renewal it puts its address back on the port,"
                       " and the address on %s expires with nothing to renew it." % (client.name, client.pid, client.interface, bridge, bridge),
            "fix": "Move the client to the bridge: kill %d, then run %s (the bridge module with migrate_addresses does both, with the"
                   " lease). Make the port's own configuration static (ifcfg BOOTPROTO=none) and the bridge's DHCP (BOOTPROTO=dhcp)."
                   % (client.pid, _fix_command(client, bridge)),
        })  # fmt: skip
    if "dhcp_expiry" in skip or set(daemons) & set(DAEMONS):
        return problems
    renewed = {(client.interface, client.family) for client in clients}
    for link in links:
        name = link.get("ifname")
        if name not in bridges:
            continue
        for info in link.get("addr_info") or ():
            valid = info.get("valid_life_time")
            family = AF_INET6 if info.get("family") == "inet6" else AF_INET
            if valid in (None, 0xFFFFFFFF) or info.get("scope") == "link" or (name, family) in renewed:
                continue
            if family == AF_INET6 and (info.get("prefixlen") != 128 or info.get("temporary")):
                continue  # router advertisements (SLAAC) renew these, in the kernel
            cidr = "%s/%s" % (info.get("local"), info.get("prefixlen"))
            port_clients = [c for c in clients if masters.get(c.interface) == name and c.family == family]
            how = ("move %s from %s to %s" % (port_clients[0].name, port_clients[0].interface, name)) if port_clients else (
                "start the DHCP client on %s (dhclient %s%s, or the bridge's ifcfg BOOTPROTO=dhcp and ifup %s)"
                % (name, "-6 " if family == AF_INET6 else "", name, name))  # fmt: skip
            problems.append({
                "check": "dhcp_expiry",
                "subject": "%s on %s" % (cidr, name),
                "problem": "%s on %s is a lease that expires in %d s, and no DHCP client on %s renews it: the host then loses"
                           " the address and the routes through it." % (cidr, name, valid, name),
                "fix": "Renew it on the bridge: %s; or give %s a static address." % (how, name),
            })  # fmt: skip
    return problems

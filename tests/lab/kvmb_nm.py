"""Real NetworkManager in a lab host (Debian 12's network-manager, 1.42).

A NetworkManager host runs, inside its own namespaces:

- a private system bus (kvmb_dbus), in the host's private /run;
- NetworkManager, in the foreground, with /etc/NetworkManager on the host's own
  /etc (the overlay), a private /var/lib/NetworkManager (a directory of the
  host's lab state, bind-mounted), and /sys read-only in the host's mount
  namespace: NetworkManager then knows that no udev will announce devices and
  manages them at once (with /sys writable it waits for udev, which the lab
  does not have, and every device stays "unmanaged").

The profiles are keyfiles, as on a stock EL9/EL10 host: eth0 (management,
static, carries SSH and the default route) and eth1 (on the lab LAN: no
address, or DHCP). Debian's NetworkManager has no ifcfg-rh plugin (Debian does
not build it, and upstream removed it), so the lab's NetworkManager reads
keyfiles only; ifcfg behaviour is that of the collection's own reader.

The daemons' PIDs go into the lab's state; teardown stops them by PID.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import kvmb_dbus

NM_CONF = """\
# NetworkManager of a kvmb lab host: keyfiles only, as on EL9/EL10.
[main]
plugins=keyfile
no-auto-default=*
dns=none
rc-manager=unmanaged
hostname-mode=none
auth-polkit=false

[logging]
level=INFO

[connectivity]
enabled=false
"""

PROFILE_DIR = "/etc/NetworkManager/system-connections"
VAR_LIB = "/var/lib/NetworkManager"


class NMError(RuntimeError):
    """NetworkManager could not be started or did not settle."""


def _uuid(host_name, device):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "kvmb-lab/%s/%s" % (host_name, device)))


def lan_address(index):
    """The static LAN address of host ``index`` (outside dnsmasq's range .100-.250)."""
    return "198.19.0.%d" % (20 + index)


def keyfiles(host_name, mac0, address, gateway, mac1, eth1_method="disabled", eth1_address=None):
    """The stock profiles of a NetworkManager lab host: {file name: text}.

    ``eth1_method``: ``disabled`` (no address), ``auto`` (DHCP from the lab LAN) or
    ``manual`` (``eth1_address``, a /24 on the LAN).
    """
    eth0 = (
        "[connection]\nid=eth0\nuuid=%s\ntype=ethernet\ninterface-name=eth0\nautoconnect=true\n\n"
        "[ethernet]\nmac-address=%s\n\n"
        "[ipv4]\nmethod=manual\naddress1=%s/30\ngateway=%s\n\n"
        "[ipv6]\nmethod=disabled\n"
    ) % (_uuid(host_name, "eth0"), mac0.upper(), address, gateway)
    eth1 = (
        "[connection]\nid=eth1\nuuid=%s\ntype=ethernet\ninterface-name=eth1\nautoconnect=true\n\n"
        "[ethernet]\nmac-address=%s\n\n"
        "[ipv4]\nmethod=%s\n%s\n"
        "[ipv6]\nmethod=disabled\n"
    ) % (
        _uuid(host_name, "eth1"),
        mac1.upper(),
        eth1_method,
        # A DHCP LAN NIC must not take the default route from the management NIC.
        "never-default=true\n" if eth1_method == "auto" else "address1=%s/24\n" % eth1_address if eth1_method == "manual" else "",
    )
    return {"eth0.nmconnection": eth0, "eth1.nmconnection": eth1}


def seed(upper, host_name, mac0, address, gateway, mac1, eth1_method="disabled", eth1_address=None):
    """Write NetworkManager's configuration and profiles into the host's /etc overlay (upper layer)."""
    conns = os.path.join(upper, "NetworkManager", "system-connections")
    os.makedirs(conns, mode=0o755, exist_ok=True)
    with open(os.path.join(upper, "NetworkManager", "NetworkManager.conf"), "w") as handle:
        handle.write(NM_CONF)
    for name, text in keyfiles(host_name, mac0, address, gateway, mac1, eth1_method, eth1_address).items():
        path = os.path.join(conns, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, 0o600)  # NetworkManager ignores profiles others can read


def prepare_mounts(host, var_lib):
    """/sys read-only and a private /var/lib/NetworkManager in the host's mount namespace (once)."""
    os.makedirs(var_lib, mode=0o700, exist_ok=True)
    mounts = host.run(["cat", "/proc/self/mountinfo"]).stdout
    if not any(line.split()[4] == VAR_LIB for line in mounts.splitlines()):
        host.run(["mount", "--bind", var_lib, VAR_LIB])
    # Only this mount of /sys (a bind remount changes the mount, not the sysfs superblock).
    host.run(["mount", "-o", "remount,bind,ro", "/sys"])


def start(host, log_path, timeout=60.0):
    """Start the bus and NetworkManager in ``host``; wait until NetworkManager finished starting.

    Returns {"dbus": pid, "NetworkManager": pid}.
    """
    pids = {}
    pids["dbus"] = kvmb_dbus.start_system_bus(host, log_path.replace("NetworkManager", "dbus"))
    with open(log_path, "ab") as log:
        proc = host.popen(["NetworkManager", "--debug"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    pids["NetworkManager"] = proc.pid
    try:
        wait_started(host, timeout)
    except NMError:
        stop(pids)
        raise
    return pids


def activate_stock_profiles(host, host_name):
    """Activate the stock profiles once after the lab made the host.

    The lab configured eth0 before NetworkManager started, so NetworkManager
    first shows it as "connected (externally)"; on a booted host the profile
    itself is active. Activating it re-applies the same address and route.
    """
    for device in ("eth0", "eth1"):
        host.run(["nmcli", "--wait", "30", "connection", "up", "uuid", _uuid(host_name, device)], timeout=60)


def ipv4_of(host, device):
    """The first IPv4 address of ``device`` in ``host``, or None."""
    out = host.run(["ip", "-4", "-o", "addr", "show", "dev", device], check=False).stdout or ""
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return None


def wait_started(host, timeout=60.0):
    """Wait until NetworkManager reports its start-up complete (nm-online -s)."""
    proc = host.run(["nm-online", "-s", "-q", "-t", str(int(timeout))], check=False, timeout=timeout + 15)
    if proc.returncode != 0:
        raise NMError(
            "NetworkManager in %s did not finish starting within %ss (nm-online: %s)" % (host.name, timeout, (proc.stderr or proc.stdout or "").strip())
        )


def stop(pids, grace=5.0):
    """Stop NetworkManager, then its bus, by PID."""
    from kvmblab import _stop_pids  # the lab's stopper (SIGTERM, then SIGKILL)

    if pids.get("NetworkManager"):
        _stop_pids([pids["NetworkManager"]], grace=grace)
    if pids.get("dbus"):
        kvmb_dbus.stop_system_bus(pids["dbus"], grace=grace)


def wait_device_state(host, device, states=("connected",), timeout=60.0):
    """Wait until ``device`` is in one of ``states`` (nmcli's words); return the last state seen."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        proc = host.run(["nmcli", "-g", "GENERAL.STATE", "device", "show", device], check=False)
        state = (proc.stdout or "").strip()
        if any(word in state for word in states):
            return state
        time.sleep(0.2)
    raise NMError("%s in %s did not reach %s within %ss (last: %r)" % (device, host.name, "/".join(states), timeout, state))


# -- A host that starts NetworkManager itself (the migration off ifcfg) ------------------------
# A stock host starts NetworkManager with systemctl; a lab host has no service manager, so a role that starts it
# runs this script instead (the role's start-command variable). It starts the host's bus and NetworkManager in the
# host's own namespaces, detached from the SSH session, writes their PIDs into the host's lab directory, and waits
# until NetworkManager finished starting. adopt() then records the PIDs, so that stop/start_networkmanager and
# teardown find them.
START_HOOK = "/run/kvmb-nm-start"
_START_SCRIPT = r"""#!/bin/sh
# kvmb lab: start this host's system bus and NetworkManager (what systemctl start NetworkManager does on a host).
set -e
d="$1"
alive() { [ -f "$d/$1.pid" ] && kill -0 "$(cat "$d/$1.pid")" 2>/dev/null; }
if ! alive dbus; then
    mkdir -p /run/dbus
    rm -f /run/dbus/system_bus_socket
    setsid dbus-daemon --system --nofork --nopidfile </dev/null >>"$d/dbus.log" 2>&1 &
    echo $! >"$d/dbus.pid"
    i=0
    while [ ! -S /run/dbus/system_bus_socket ]; do
        i=$((i + 1)); [ "$i" -le 300 ] || { echo "dbus-daemon did not open its socket" >&2; exit 1; }; sleep 0.1
    done
fi
if ! alive NetworkManager; then
    setsid NetworkManager --debug </dev/null >>"$d/NetworkManager.log" 2>&1 &
    echo $! >"$d/NetworkManager.pid"
fi
exec nm-online -s -q -t 60
"""


def install_start_hook(host):
    """Put the start script into ``host``; return the argv a role runs to start NetworkManager there."""
    host.write_file(START_HOOK, _START_SCRIPT, mode="0755")
    return ["sh", START_HOOK, host.dir]


def adopt(lab, host):
    """Record the PIDs the start script wrote as the host's services; return them ({} when it never ran)."""
    services = {}
    for key in ("dbus", "NetworkManager"):
        path = os.path.join(host.dir, "%s.pid" % key)
        if os.path.exists(path):
            with open(path) as handle:
                services[key] = int(handle.read().strip())
            os.unlink(path)
    if services:
        with lab._locked():
            state = lab._load()
            if host.name in state["hosts"]:
                state["hosts"][host.name]["services"] = services
                for key, pid in services.items():
                    state["pids"]["%s-%s" % (host.name, key)] = {"pid": pid, "cmd": key}
                lab._save(state)
    return services


def make_network_scripts_host(host, bridge="breth1", nic="eth1"):
    """Turn a NetworkManager lab host into one that runs as an EL8 network-scripts host does.

    NetworkManager (installed) is stopped; the keyfiles go; ifcfg files describe eth0 (management, static),
    ``bridge`` (static, the address ``nic`` has now, TYPE=Bridge) and ``nic`` as its port (NM_CONTROLLED=no, as
    host_bridge writes for the network service); and the bridge is up at runtime with the address, as the network
    service left it. The SSH session over ``nic`` survives: the address moves in one netlink batch.
    Returns {"address": the bridge's CIDR, "mac": the NIC's MAC, "files": {name: text}}.
    """
    import json

    host.stop_networkmanager()
    addr = json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", nic]).stdout)[0]["addr_info"][0]
    cidr = "%s/%s" % (addr["local"], addr["prefixlen"])
    mac = json.loads(host.run(["ip", "-j", "link", "show", "dev", nic]).stdout)[0]["address"]
    eth0 = json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", "eth0"]).stdout)[0]["addr_info"][0]
    mac0 = json.loads(host.run(["ip", "-j", "link", "show", "dev", "eth0"]).stdout)[0]["address"]
    gateway = json.loads(host.run(["ip", "-j", "-4", "route", "show", "default"]).stdout)[0]["gateway"]
    files = {
        "ifcfg-eth0": "DEVICE=eth0\nTYPE=Ethernet\nHWADDR=%s\nBOOTPROTO=none\nIPADDR=%s\nPREFIX=%s\nGATEWAY=%s\nONBOOT=yes\n"
        % (mac0, eth0["local"], eth0["prefixlen"], gateway),
        "ifcfg-" + bridge: "DEVICE=%s\nTYPE=Bridge\nBOOTPROTO=none\nIPADDR=%s\nPREFIX=%s\nDEFROUTE=no\nSTP=no\nDELAY=0\nONBOOT=yes\n"
        % (bridge, addr["local"], addr["prefixlen"]),
        "ifcfg-" + nic: "DEVICE=%s\nTYPE=Ethernet\nHWADDR=%s\nBRIDGE=%s\nONBOOT=yes\nNM_CONTROLLED=no\n" % (nic, mac, bridge),
    }
    host.run(["sh", "-c", 'rm -f "$1"/*', "sh", PROFILE_DIR])
    host.run(["rm", "-rf", "/run/NetworkManager"])  # NetworkManager's runtime state: as if it had never run
    for name, text in files.items():
        host.write_file("/etc/sysconfig/network-scripts/" + name, text)
    batch = [
        "link add %s type bridge stp_state 0 forward_delay 0" % bridge,
        "link set %s address %s" % (bridge, mac),
        "addr del %s dev %s" % (cidr, nic),
        "link set %s master %s" % (nic, bridge),
        "addr add %s dev %s" % (cidr, bridge),
        "link set %s up" % bridge,
    ]
    host.run(["ip", "-batch", "-"], input="\n".join(batch) + "\n")
    return {"address": cidr, "mac": mac, "files": files}

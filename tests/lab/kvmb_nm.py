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
    ) % (_uuid(host_name, "eth1"), mac1.upper(), eth1_method,
         # A DHCP LAN NIC must not take the default route from the management NIC.
         "never-default=true\n" if eth1_method == "auto"
         else "address1=%s/24\n" % eth1_address if eth1_method == "manual" else "")
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
        proc = host.popen(["NetworkManager", "--debug"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                          start_new_session=True)
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
        raise NMError("NetworkManager in %s did not finish starting within %ss (nm-online: %s)"
                      % (host.name, timeout, (proc.stderr or proc.stdout or "").strip()))


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

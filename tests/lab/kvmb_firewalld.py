"""firewalld inside a lab host: Debian's firewalld on the host's private system bus.

The host's /etc is an overlay of its own, so /etc/firewalld starts as the
package's stock configuration (default zone public, nftables backend) and every
permanent change stays with this host. firewalld and its dbus-daemon run in the
host's network, mount and UTS namespaces; they are stopped by PID.
"""

from __future__ import annotations

import os
import subprocess
import time

import kvmb_dbus


class FirewalldError(RuntimeError):
    """firewalld did not come up in a lab host."""


def wait_running(host, timeout=90.0):
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = host.run(["firewall-cmd", "--state"], check=False)
        last = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode == 0 and last.strip() == "running":
            return
        time.sleep(0.2)
    raise FirewalldError("firewalld of %s is not running after %ss: %s" % (host.name, timeout, last.strip()))


def start_firewalld(host, log_dir):
    """Start firewalld in ``host`` (its bus must be up); return its PID once it answers --state."""
    log_file = os.path.join(log_dir, "firewalld.log")
    with open(os.path.join(log_dir, "firewalld.out"), "ab") as out:
        proc = host.popen(
            ["firewalld", "--nofork", "--nopid", "--log-target", "file", "--log-file", log_file],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        wait_running(host)
    except FirewalldError:
        kvmb_dbus.stop_pid(proc.pid)
        raise
    return proc.pid


def stop_firewalld(pid):
    """Stop firewalld by PID (it leaves its rules behind only with CleanupOnExit=no)."""
    kvmb_dbus.stop_pid(pid, grace=15.0)


def start(host, log_dir):
    """The bus, then firewalld; return {"dbus": pid, "firewalld": pid}."""
    bus = kvmb_dbus.start_system_bus(host, os.path.join(log_dir, "dbus.log"))
    try:
        fw = start_firewalld(host, log_dir)
    except Exception:
        kvmb_dbus.stop_system_bus(bus)
        raise
    return {"dbus": bus, "firewalld": fw}


def stop(pids):
    stop_firewalld(pids.get("firewalld"))
    kvmb_dbus.stop_system_bus(pids.get("dbus"))

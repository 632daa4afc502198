"""A private D-Bus system bus inside a lab host.

Daemons such as NetworkManager and firewalld talk to each other and to their
clients (nmcli, busctl, firewall-cmd) over the system bus at
/run/dbus/system_bus_socket. A lab host has its own /run (a tmpfs in its mount
namespace), so a dbus-daemon started inside the host serves that host only and
never meets the machine's own bus.

The daemon runs in the foreground (no fork, no pid file): the PID the lab gets
back is the daemon's own, and teardown stops it by that PID.
"""

from __future__ import annotations

import select
import subprocess
import time

SOCKET = "/run/dbus/system_bus_socket"


class DBusError(RuntimeError):
    """The private system bus could not be started."""


def start_system_bus(host, timeout=20.0):
    """Start a system-bus dbus-daemon inside ``host``; return its PID once it listens.

    ``host`` is a lab host (it has ``run(argv)`` and ``popen(argv, **kw)`` that
    enter its network, mount and UTS namespaces). The daemon prints its address
    when it is ready to take connections; that line is the readiness signal.
    """
    host.run(["mkdir", "-p", "/run/dbus"])
    host.run(["rm", "-f", SOCKET])
    proc = host.popen(
        ["dbus-daemon", "--system", "--nofork", "--nopidfile", "--nosyslog", "--print-address=1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = proc.stdout.readline()
            if not chunk:
                break
            line += chunk
        if proc.poll() is not None:
            break
    proc.stdout.close()
    if not line.startswith(b"unix:"):
        proc.kill()
        proc.wait()
        raise DBusError("dbus-daemon did not start in %s (exit status %s)" % (host.name, proc.poll()))
    return proc.pid

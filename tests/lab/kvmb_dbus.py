"""A private system D-Bus inside a lab host: dbus-daemon on the host's own /run.

A lab host's /run is its own tmpfs (see kvmblab), so a system bus started
there at /run/dbus/system_bus_socket is seen only by the host's processes.
Daemons that talk on the system bus (firewalld, NetworkManager) and their
clients (firewall-cmd, nmcli) find it at its standard address.

start_system_bus(host) returns the daemon's PID; stop_system_bus(pid) stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

SOCKET = "/run/dbus/system_bus_socket"


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def start_system_bus(host, log_path, timeout=30.0):
    """Start dbus-daemon --system in ``host``'s namespaces; return its PID once the socket answers."""
    host.run(["mkdir", "-p", "/run/dbus"])
    # A bus stopped earlier (a daemon restart in a test) can leave its socket behind: remove it, so that the
    # probe below waits for the new daemon's socket, not for a stale file nobody listens on.
    host.run(["rm", "-f", SOCKET])
    with open(log_path, "ab") as log:
        proc = host.popen(
            ["dbus-daemon", "--system", "--nofork", "--nopidfile"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("dbus-daemon exited with %s in %s (see %s)" % (proc.returncode, host.name, log_path))
        probe = host.run(["test", "-S", SOCKET], check=False)
        if probe.returncode == 0:
            return proc.pid
        time.sleep(0.1)
    stop_system_bus(proc.pid)
    raise RuntimeError("dbus-daemon of %s did not open %s (see %s)" % (host.name, SOCKET, log_path))


def stop_system_bus(pid, grace=5.0):
    """SIGTERM the bus daemon by PID, SIGKILL it if it is still there after ``grace``."""
    stop_pid(pid, grace)


def stop_pid(pid, grace=5.0):
    if not pid or not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)

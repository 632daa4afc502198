# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Detecting the SSH connection a bridging must keep: the host's addresses the controller reached.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ansible_collections.kvmhost.bridging.plugins.module_utils._kernel_snapshot import normalize_ip


def _server_address(value: str | None) -> str | None:
    """The server-side address (third field) of an SSH_CONNECTION value, or None."""
    fields = (value or "").split()
    return normalize_ip(fields[2]) if len(fields) >= 4 else None


def _proc_environ(proc: str, pid: int, name: str) -> str | None:
    try:
        with open(os.path.join(proc, str(pid), "environ"), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode("utf-8", "replace")
    return None


def _proc_parent(proc: str, pid: int) -> int:
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            stat = handle.read()
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: read after the last ')'.
    rest = stat.rsplit(")", 1)[-1].split()
    return int(rest[1]) if len(rest) > 1 else 0


def connection_addresses(environ: Mapping[str, str] | None = None, proc: str = "/proc", pid: int | None = None, depth: int = 32) -> list[str]:
    """The host's addresses the controller is connected to, from SSH_CONNECTION.

    Read from this process's environment, and from its ancestors' (become
    methods such as sudo drop SSH_CONNECTION from the environment, but the
    login shell above still has it).
    """
    environ = os.environ if environ is None else environ
    found = set()
    address = _server_address(environ.get("SSH_CONNECTION"))
    if address:
        found.add(address)
    pid = os.getpid() if pid is None else pid
    for _level in range(depth):
        pid = _proc_parent(proc, pid)
        if pid <= 1:
            break
        address = _server_address(_proc_environ(proc, pid, "SSH_CONNECTION"))
        if address:
            found.add(address)
    return sorted(found)

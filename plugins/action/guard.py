# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guard's controller side: refuse to arm over a connection that cannot confirm anything, then run the module.

The guard's proof that a change kept the host reachable is a fresh connection
from the controller through the host's network. A connection that does not go
through it (the controller itself, a container runtime, a chroot) would confirm
every change, and one that runs no Python modules on the host cannot run the
guard at all: both get a message that says so, before anything is armed.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

# Transports (the connection plugin's ``transport``) that reach the host over its network and run its Python:
# ansible.builtin.ssh and Mitogen's SSH ("ssh"), ansible.builtin.paramiko_ssh ("paramiko").
NETWORK_TRANSPORTS = frozenset(("ssh", "paramiko", "paramiko_ssh"))
# Connections that run no Python modules on the managed host.
NO_MODULES = frozenset(("network_cli", "httpapi", "netconf", "winrm", "psrp"))


def connection_problem(transport):
    """Why the guard cannot run over a connection of this ``transport``, or None when it can."""
    name = str(transport or "").rsplit(".", 1)[-1]
    if name in NETWORK_TRANSPORTS:
        return None
    if name in NO_MODULES:
        return (
            "The guard cannot run over the %r connection: it runs a watcher on the managed Linux host itself, and "
            "this connection runs no Python modules there. Use ssh (or Mitogen's SSH) to reach the host." % transport
        )
    return (
        "The guard cannot protect a change made over the %r connection: it confirms a change by a fresh connection "
        "through the host's network, and this connection does not go through it (a change that cut the host off "
        "would still be confirmed). Reach the host with ssh or paramiko_ssh (plain or under a Mitogen strategy), "
        "or make the change without the guard (host_bridge_rollback_timeout=0 in the host_bridge role)." % transport
    )


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._task.args.get("action") == "arm":
            problem = connection_problem(getattr(self._connection, "transport", None))
            if problem:
                result.update(failed=True, changed=False, msg=problem)
                return result
        result.update(self._execute_module(task_vars=task_vars))
        return result

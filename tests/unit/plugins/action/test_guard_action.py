"""The guard's action plugin: which connections can carry the guard, and a clear refusal for the others."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.bridging.plugins.action import guard as action


@pytest.mark.parametrize("transport", ["ssh", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh"])
def test_network_connections_carry_the_guard(transport):
    # Mitogen's SSH connection (mitogen_ssh, under the mitogen_* strategies) reports the transport "ssh".
    assert action.connection_problem(transport) is None


@pytest.mark.parametrize("transport", ["local", "docker", "podman", "lxd", "chroot", "kubectl", "setns", "community.general.lxd", None])
def test_connections_that_bypass_the_network_are_refused(transport):
    problem = action.connection_problem(transport)
    assert problem.startswith("The guard cannot protect a change made over the %r connection" % transport)
    assert "does not go through it" in problem
    assert "host_bridge_rollback_timeout=0" in problem


@pytest.mark.parametrize("transport", ["network_cli", "ansible.netcommon.httpapi", "netconf", "winrm", "psrp"])
def test_connections_without_python_modules_are_refused(transport):
    problem = action.connection_problem(transport)
    assert problem.startswith("The guard cannot run over the %r connection" % transport)
    assert "runs no Python modules there" in problem

"""The lab itself: hosts reachable over real SSH, private /etc, the LAN's DHCP, teardown."""

from __future__ import annotations

import os

import kvmblab


def test_host_is_reachable_over_ssh_with_its_own_etc(host, ansible):
    result = ansible.module(host, "ansible.builtin.command", {"argv": ["cat", "/etc/hostname", "/etc/sysconfig/network-scripts/ifcfg-eth0"]})
    assert result["rc"] == 0
    assert result["stdout"].splitlines()[0] == host.name
    assert "IPADDR=%s" % host.address in result["stdout"]
    # The machine's own /etc has no sysconfig tree: the host's is private.
    assert host.read_file("/etc/sysconfig/network-scripts/ifcfg-eth1").startswith("DEVICE=eth1")
    with open("/etc/hostname") as handle:
        assert handle.read().strip() != host.name


def test_guest_gets_a_lease_across_a_bridge(host):
    host.run(["ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0"])
    host.run(["ip", "link", "set", "eth1", "master", "br0"])
    host.run(["ip", "link", "set", "br0", "up"])
    guest = host.add_guest(bridge="br0")
    assert guest.port == "vnet0"
    lease = guest.dhcp()
    assert lease is not None and lease.startswith("198.19.0.")
    assert guest.ping(kvmblab.LAN_GATEWAY)


def test_guest_without_bridge_gets_no_lease(host):
    guest = host.add_guest()
    assert guest.dhcp(timeout=2) is None


def test_removed_host_leaves_nothing(lab):
    extra = lab.add_host()
    extra.add_guest()
    lab.remove_host(extra)
    status = lab.status()
    assert extra.netns not in status["namespaces"]
    assert extra.netns + "-g0" not in status["namespaces"]
    assert extra.netns not in status["root_links"]
    assert not kvmblab._pid_alive(extra.pid)


def test_host_has_its_own_run(host):
    """State a module keeps in /run (the guard's) stays inside the host."""
    host.run(["sh", "-c", "mkdir -p /run/kvmb-probe && echo %s > /run/kvmb-probe/owner" % host.name])
    assert host.read_file("/run/kvmb-probe/owner") == host.name + "\n"
    assert not os.path.exists("/run/kvmb-probe")

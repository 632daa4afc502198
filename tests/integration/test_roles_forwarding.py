"""Acceptance 1, bridged VMs: host_bridge on eth1 and forwarding on a host with the stock RHEL firewall.

The host has `-A FORWARD -j REJECT --reject-with icmp-host-prohibited` (runtime and
/etc/sysconfig/iptables) and bridge-nf-call-iptables=1, so bridged frames pass
through iptables. A guest on vnet0 gets a DHCP lease from the LAN's server only
after the forwarding role, and a second run of both playbooks changes nothing.
"""

from __future__ import annotations

import json
import os

import kvmblab
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_BRIDGE = os.path.join(ROOT, "playbooks", "host_bridge.yml")
FORWARDING = os.path.join(ROOT, "playbooks", "forwarding.yml")
BRIDGE_ETH1 = {"host_bridge_nic": "eth1", "host_bridge_name": "breth1"}


def forward_rules(host):
    return [line for line in host.run(["iptables", "-S", "FORWARD"]).stdout.splitlines() if line.startswith("-A")]


def sysctl(host, key):
    return host.run(["sysctl", "-n", key]).stdout.strip()


def test_bridged_guest_gets_a_lease_after_forwarding(stock_host, ansible):
    host = stock_host
    host.run(["sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"])
    assert "-A FORWARD -j REJECT --reject-with icmp-host-prohibited" in forward_rules(host)

    bridged = ansible.playbook(HOST_BRIDGE, hosts=[host], extra_vars=BRIDGE_ETH1)
    assert bridged.rc == 0, bridged.output
    master = json.loads(host.run(["ip", "-j", "link", "show", "eth1"]).stdout)[0].get("master")
    assert master == "breth1"

    guest = host.add_guest(port="vnet0", bridge="breth1")
    # The REJECT rule bites: with bridge-nf-call-iptables=1 even the guest's DHCP is rejected.
    assert guest.dhcp(timeout=4) is None

    forwarded = ansible.playbook(FORWARDING, hosts=[host])
    assert forwarded.rc == 0, forwarded.output
    assert forwarded.stats[host.name]["changed"] == 2
    assert not any("REJECT" in rule for rule in forward_rules(host))
    saved = host.read_file("/etc/sysconfig/iptables")
    assert "-A FORWARD -j REJECT" not in saved
    assert "-A INPUT -j REJECT --reject-with icmp-host-prohibited" in saved  # only FORWARD's rule goes
    assert sysctl(host, "net.ipv4.ip_forward") == "1"
    assert "net.ipv4.ip_forward = 1" in host.read_file("/etc/sysctl.d/90-kvmhost-bridging.conf")
    assert sysctl(host, "net.bridge.bridge-nf-call-iptables") == "1"  # the default policy leaves it

    lease = guest.dhcp()
    assert lease is not None and lease.startswith("198.19.0."), "the guest got no lease through breth1"
    assert guest.ping(kvmblab.LAN_GATEWAY)

    # A second run of both changes nothing (the guest's vnet0 on breth1 stays).
    for playbook, extra in ((HOST_BRIDGE, BRIDGE_ETH1), (FORWARDING, None)):
        again = ansible.playbook(playbook, hosts=[host], extra_vars=extra)
        assert again.rc == 0, again.output
        assert again.stats[host.name]["changed"] == 0, again.output
    ports = {rec["ifname"] for rec in json.loads(host.run(["ip", "-j", "link", "show", "master", "breth1"]).stdout)}
    assert ports == {"eth1", "vnet0"}
    assert guest.ping(kvmblab.LAN_GATEWAY)


@pytest.mark.parametrize(("policy", "expected"), [("0", "0"), ("1", "1")])
def test_bridge_nf_call_policy(host, ansible, policy, expected):
    # Start from the other value, so that the role must change each one.
    for key in ("iptables", "ip6tables", "arptables"):
        host.run(["sysctl", "-w", "net.bridge.bridge-nf-call-%s=%s" % (key, "1" if expected == "0" else "0")])
    result = ansible.playbook(FORWARDING, hosts=[host], extra_vars={"forwarding_bridge_nf_call": policy})
    assert result.rc == 0, result.output
    for key in ("iptables", "ip6tables", "arptables"):
        assert sysctl(host, "net.bridge.bridge-nf-call-" + key) == expected
    assert "net.bridge.bridge-nf-call-iptables = %s" % expected in host.read_file("/etc/sysctl.d/90-kvmhost-bridging.conf")


def test_accept_bridged_keeps_the_reject_rule(stock_host, ansible):
    host = stock_host
    result = ansible.playbook(FORWARDING, hosts=[stock_host], extra_vars={"forwarding_accept_bridged": True})
    assert result.rc == 0, result.output
    rules = forward_rules(host)
    assert rules[0] == "-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT"
    assert "-A FORWARD -j REJECT --reject-with icmp-host-prohibited" in rules


def test_check_mode_changes_nothing(stock_host, ansible):
    host = stock_host
    rules = forward_rules(host)
    forward = sysctl(host, "net.ipv4.ip_forward")
    saved = host.run(["sha256sum", "/etc/sysconfig/iptables"]).stdout
    assert "-A FORWARD -j REJECT" in host.read_file("/etc/sysconfig/iptables")  # check mode would remove it
    result = ansible.playbook(FORWARDING, hosts=[host], check=True)
    assert result.rc == 0, result.output
    assert result.stats[host.name]["changed"] == 2
    assert forward_rules(host) == rules and sysctl(host, "net.ipv4.ip_forward") == forward
    assert host.run(["sha256sum", "/etc/sysconfig/iptables"]).stdout == saved  # the saved rules, byte for byte
    assert host.read_file("/etc/sysctl.d/90-kvmhost-bridging.conf") is None

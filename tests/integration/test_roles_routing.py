"""Acceptance 3, routing between two isolated bridges; and the isolated_bridge and vm_taps roles.

Two isolated bridges on different subnets on one host, one guest on each, the host
routing between them. Before the forwarding role pings fail both ways (forwarding off,
the stock FORWARD REJECT rule); after it they succeed both ways.
"""

from __future__ import annotations

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ISOLATED = os.path.join(ROOT, "playbooks", "isolated_bridge.yml")
FORWARDING = os.path.join(ROOT, "playbooks", "forwarding.yml")
VM_TAPS = os.path.join(ROOT, "playbooks", "vm_taps.yml")
SCRIPTS = "/etc/sysconfig/network-scripts"
TWO_NETWORKS = {"isolated_bridge_bridges": [{"name": "isol1", "address": "198.19.10.1/24"}, {"name": "isol2", "address": "198.19.20.1/24"}]}


def ipv4(host, dev):
    out = json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", dev], check=False).stdout or "[]")
    return sorted("%s/%s" % (a["local"], a["prefixlen"]) for rec in out for a in rec.get("addr_info", []))


def link(host, name):
    out = json.loads(host.run(["ip", "-j", "-d", "link", "show", name], check=False).stdout or "[]")
    return out[0] if out else None


def guest_on(host, bridge, address, gateway):
    guest = host.add_guest(bridge=bridge)
    guest.run(["ip", "addr", "add", address, "dev", "eth0"])
    guest.run(["ip", "route", "add", "default", "via", gateway])
    return guest


def test_routing_between_two_isolated_bridges(stock_host, ansible):
    host = stock_host
    made = ansible.playbook(ISOLATED, hosts=[host], extra_vars=TWO_NETWORKS)
    assert made.rc == 0, made.output
    assert ipv4(host, "isol1") == ["198.19.10.1/24"] and ipv4(host, "isol2") == ["198.19.20.1/24"]
    for name, address in (("isol1", "198.19.10.1"), ("isol2", "198.19.20.1")):
        text = host.read_file("%s/ifcfg-%s" % (SCRIPTS, name))
        for line in ("TYPE=Bridge", "BOOTPROTO=static", "IPADDR=%s" % address, "PREFIX=24", "DEFROUTE=no", "ONBOOT=yes", "NM_CONTROLLED=no"):
            assert line in text.splitlines()

    one = guest_on(host, "isol1", "198.19.10.10/24", "198.19.10.1")
    two = guest_on(host, "isol2", "198.19.20.10/24", "198.19.20.1")
    # Each guest reaches the host on its own network...
    assert one.ping("198.19.10.1") and two.ping("198.19.20.1")
    # ...but not the other guest: the host does not forward, and FORWARD rejects.
    assert host.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
    assert not one.ping("198.19.20.10")
    assert not two.ping("198.19.10.10")

    forwarded = ansible.playbook(FORWARDING, hosts=[host])
    assert forwarded.rc == 0, forwarded.output
    assert one.ping("198.19.20.10", count=2)
    assert two.ping("198.19.10.10", count=2)

    for playbook, extra in ((ISOLATED, TWO_NETWORKS), (FORWARDING, None)):
        again = ansible.playbook(playbook, hosts=[host], extra_vars=extra)
        assert again.rc == 0 and again.stats[host.name]["changed"] == 0, again.output
    # The guests' ports stay on their bridges.
    assert link(host, one.port)["master"] == "isol1" and link(host, two.port)["master"] == "isol2"


def test_isolated_bridge_routing_turns_forwarding_on(host, ansible):
    result = ansible.playbook(ISOLATED, hosts=[host], extra_vars=dict(TWO_NETWORKS, isolated_bridge_routing=True))
    assert result.rc == 0, result.output
    one = guest_on(host, "isol1", "198.19.10.10/24", "198.19.10.1")
    two = guest_on(host, "isol2", "198.19.20.10/24", "198.19.20.1")
    assert one.ping("198.19.20.10", count=2) and two.ping("198.19.10.10", count=2)
    assert "net.ipv4.ip_forward = 1" in host.read_file("/etc/sysctl.d/90-kvmhost-bridging.conf")


def test_isolated_bridge_defaults_and_address_change(host, ansible):
    result = ansible.playbook(ISOLATED, hosts=[host])
    assert result.rc == 0, result.output
    bridge = link(host, "isolbr0")
    assert bridge["linkinfo"]["info_kind"] == "bridge" and ipv4(host, "isolbr0") == []
    text = host.read_file("%s/ifcfg-isolbr0" % SCRIPTS).splitlines()
    assert "BOOTPROTO=none" in text and "TYPE=Bridge" in text and not any(line.startswith("IPADDR") for line in text)
    # Give it an address, then another: the old one goes, at runtime and in the file.
    for address in ("198.19.30.1/24", "198.19.31.1/24"):
        result = ansible.playbook(ISOLATED, hosts=[host], extra_vars={"isolated_bridge_address": address})
        assert result.rc == 0, result.output
        assert ipv4(host, "isolbr0") == [address]
        assert "IPADDR=%s" % address.split("/", maxsplit=1)[0] in host.read_file("%s/ifcfg-isolbr0" % SCRIPTS).splitlines()
    again = ansible.playbook(ISOLATED, hosts=[host], extra_vars={"isolated_bridge_address": "198.19.31.1/24"})
    assert again.rc == 0 and again.stats[host.name]["changed"] == 0, again.output


def test_vm_taps_in_bulk(host, ansible):
    assert ansible.playbook(ISOLATED, hosts=[host]).rc == 0
    extra = {"vm_taps_count": 3, "vm_taps_bridge": "isolbr0", "vm_taps_owner": "65534", "vm_taps_taps": [{"name": "vnet7", "mtu": 1400, "bridge": ""}]}
    result = ansible.playbook(VM_TAPS, hosts=[host], extra_vars=extra)
    assert result.rc == 0, result.output
    for name in ("vmtap0", "vmtap1", "vmtap2"):
        tap = link(host, name)
        assert tap["linkinfo"]["info_kind"] == "tun" and tap["master"] == "isolbr0"
        assert tap["linkinfo"]["info_data"]["user"] in (65534, "nobody")
    assert link(host, "vnet7")["mtu"] == 1400 and "master" not in link(host, "vnet7")
    again = ansible.playbook(VM_TAPS, hosts=[host], extra_vars=extra)
    assert again.rc == 0 and again.stats[host.name]["changed"] == 0, again.output
    gone = ansible.playbook(VM_TAPS, hosts=[host], extra_vars=dict(extra, vm_taps_state="absent"))
    assert gone.rc == 0, gone.output
    assert all(link(host, name) is None for name in ("vmtap0", "vmtap1", "vmtap2", "vnet7"))

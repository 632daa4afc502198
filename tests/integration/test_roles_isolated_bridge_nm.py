"""The isolated_bridge role on a NetworkManager host: a keyfile per bridge, activated through NetworkManager."""

from __future__ import annotations

import json
import os

import kvmb_nm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, "playbooks", "isolated_bridge.yml")
KEYFILE = "/etc/NetworkManager/system-connections/isolbr0.nmconnection"


def ipv4(host, dev):
    out = json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", dev], check=False).stdout or "[]")
    return sorted("%s/%s" % (a["local"], a["prefixlen"]) for rec in out for a in rec.get("addr_info", []))


def test_isolated_bridge_through_networkmanager_comes_back_after_a_restart(nm_host, ansible):
    extra = {"isolated_bridge_address": "198.19.200.1/24"}
    result = ansible.playbook(PLAYBOOK, hosts=[nm_host], extra_vars=extra)
    assert result.rc == 0, result.output
    assert nm_host.run(["stat", "-c", "%a %U", KEYFILE]).stdout.strip() == "600 root"
    text = nm_host.read_file(KEYFILE)
    assert "type=bridge" in text and "address1=198.19.200.1/24" in text and "never-default=true" in text
    assert kvmb_nm.wait_device_state(nm_host, "isolbr0").startswith("100")
    assert ipv4(nm_host, "isolbr0") == ["198.19.200.1/24"]
    # Nothing went to the network service's files on a NetworkManager host.
    assert nm_host.read_file("/etc/sysconfig/network-scripts/ifcfg-isolbr0") is None

    again = ansible.playbook(PLAYBOOK, hosts=[nm_host], extra_vars=extra)
    assert again.rc == 0, again.output
    assert again.stats[nm_host.name]["changed"] == 0

    nm_host.stop_networkmanager()
    nm_host.run(["ip", "link", "del", "isolbr0"])
    nm_host.run(["rm", "-rf", "/run/NetworkManager"])
    nm_host.start_networkmanager()
    assert kvmb_nm.wait_device_state(nm_host, "isolbr0", timeout=90).startswith("100")
    assert ipv4(nm_host, "isolbr0") == ["198.19.200.1/24"]

"""The host_bridge role over real SSH: bridging the NIC that carries the connection, the guard's rollback.

Every test runs the collection's own playbooks/host_bridge.yml against a fresh lab host
(eth0 carries SSH and the default route; eth1 is on the lab LAN).
"""

from __future__ import annotations

import json
import os
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, "playbooks", "host_bridge.yml")
SCRIPTS = "/etc/sysconfig/network-scripts"
# The role's one task that plans, arms the guard, applies and confirms (the kvmhost.bridging.host_bridge action).
BRIDGE_TASK = "Bridge the NIC (plan, arm the guard, apply, confirm over a fresh connection)"


def links(host):
    """{name: ip -j link record} of the host."""
    return {rec["ifname"]: rec for rec in json.loads(host.run(["ip", "-j", "link", "show"]).stdout)}


def ipv4(host, dev):
    out = json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", dev], check=False).stdout or "[]")
    return sorted("%s/%s" % (a["local"], a["prefixlen"]) for rec in out for a in rec.get("addr_info", []))


def default_route(host):
    routes = json.loads(host.run(["ip", "-j", "-4", "route", "show", "default"]).stdout)
    return [(r.get("gateway"), r.get("dev")) for r in routes]


def ifcfg(host, device):
    """The file as key/value pairs (the role writes no quoting these values need), or None."""
    text = host.read_file("%s/ifcfg-%s" % (SCRIPTS, device))
    if text is None:
        return None
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def runtime_state(host):
    return {
        "links": {name: (rec.get("master"), rec["address"], "UP" in rec["flags"]) for name, rec in links(host).items()},
        "eth0": ipv4(host, "eth0"),
        "eth1": ipv4(host, "eth1"),
        "default": default_route(host),
    }


def guard_files(host):
    """The guard's files of the role on this host (in the host's own /run)."""
    netns = host.run(["stat", "-L", "-c", "%i", "/proc/self/ns/net"]).stdout.strip()
    return "/run/kvmhost-bridging/guard-host_bridge-%s.net%s" % (host.name, netns)


def guard_outcome(host):
    """The guard's last outcome on the host, from its state directory (found by the role's guard id)."""
    text = host.read_file(guard_files(host) + ".result.json")
    return json.loads(text) if text else None


def task_results(result, host, suffix):
    return [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith(suffix)]


def failure_message(result, host):
    msgs = [
        r["result"].get("msg", "")
        for r in result.results
        if r["host"] == host.name and r["status"] == "failed" and not r["result"].get("_ansible_ignore_errors")
    ]
    return "\n".join(msgs)


def test_bridging_the_nic_that_carries_the_connection(host, any_ansible):
    """Proof 1: eth0 carries SSH and the default route; the play bridges it and goes on, nothing is cut or rolled back."""
    mac = links(host)["eth0"]["address"]
    peer = default_route(host)[0][0]
    play = (
        """
- name: Bridge the management NIC
  ansible.builtin.import_playbook: %s

- name: The play goes on over SSH afterwards
  hosts: all
  gather_facts: false
  tasks:
    - name: Read the hostname after the change
      ansible.builtin.command:
        argv: [cat, /etc/hostname]
      changed_when: false
"""
        % PLAYBOOK
    )
    result = any_ansible.playbook(play, hosts=[host])
    assert result.rc == 0, result.output
    stats = result.stats[host.name]
    assert stats["unreachable"] == 0 and stats["failures"] == 0 and stats["rescued"] == 0 and stats["ignored"] == 0
    assert task_results(result, host, "Read the hostname after the change")[0]["stdout"] == host.name

    # Kernel: eth0 is a port of breth0, which has eth0's MAC, the address and the default route.
    now = links(host)
    assert now["eth0"]["master"] == "breth0"
    assert now["breth0"]["address"] == mac
    assert ipv4(host, "breth0") == ["%s/30" % host.address]
    assert ipv4(host, "eth0") == []
    assert default_route(host) == [(peer, "breth0")]

    # Files: the NIC is a port with nothing of IP left, the bridge carries what the NIC had (BOOTPROTO=none + IPADDR).
    nic, bridge = ifcfg(host, "eth0"), ifcfg(host, "breth0")
    assert nic == {"DEVICE": "eth0", "TYPE": "Ethernet", "HWADDR": mac, "BOOTPROTO": "none", "ONBOOT": "yes", "BRIDGE": "breth0", "NM_CONTROLLED": "no"}
    assert bridge["TYPE"] == "Bridge" and bridge["BOOTPROTO"] == "none" and bridge["ONBOOT"] == "yes"
    assert bridge["NM_CONTROLLED"] == "no" and bridge["MACADDR"] == mac
    assert (bridge["IPADDR"], bridge["PREFIX"], bridge["GATEWAY"]) == (host.address, "30", peer)
    assert (bridge["STP"], bridge["DELAY"]) == ("no", "0")

    # The host's Python has pyroute2: no package manager, no repository.
    bridged = task_results(result, host, BRIDGE_TASK)[0]
    assert bridged["pyroute2"] == {"present": True, "installed": False}

    # The guard was armed, watched and confirmed over a fresh connection, not rolled back; no async anywhere in the guard.
    armed = bridged["guard"]["arm"]
    assert armed["watching"] is True and armed["watcher"] > 0 and armed["scope"] is None  # lab hosts have no systemd
    outcome = guard_outcome(host)
    assert outcome["confirmed"] is True and outcome["rolled_back"] is False and outcome["decided_by"] == "confirm"
    confirm = bridged["guard"]["decision"]
    assert confirm["confirmed"] is True and confirm["remaining"] > 0
    assert confirm["outcome"] == outcome  # confirm and collect in one call
    assert not [r for r in result.results if r["host"] == host.name and "ansible_job_id" in r["result"]]

    # Second run: host_bridge_nic auto now resolves through breth0 to eth0; nothing changes and the guard stays unarmed.
    again = any_ansible.playbook(PLAYBOOK, hosts=[host])
    assert again.rc == 0, again.output
    assert again.stats[host.name]["changed"] == 0
    assert "guard" not in task_results(again, host, BRIDGE_TASK)[0]
    assert guard_outcome(host)["arming"] == outcome["arming"]
    assert links(host)["eth0"]["master"] == "breth0"


def test_a_change_that_cuts_the_host_off_is_rolled_back(host, any_ansible):
    """Proof 2: a wrong static address cuts SSH; the host restores itself in time, answers again, the play fails clearly."""
    before = runtime_state(host)
    files_before = {name: host.read_file("%s/ifcfg-%s" % (SCRIPTS, name)) for name in ("eth0", "breth0")}
    assert files_before["breth0"] is None
    timeout = 20
    started = time.monotonic()
    result = any_ansible.playbook(
        PLAYBOOK,
        hosts=[host],
        extra_vars={
            "host_bridge_bootproto": "static",
            "host_bridge_addresses": ["198.19.254.2/30"],
            "host_bridge_gateway": "198.19.254.1",
            "host_bridge_rollback_timeout": timeout,
        },
    )
    elapsed = time.monotonic() - started
    assert result.rc != 0
    message = failure_message(result, host)
    assert "host_bridge: %s: lost connectivity after bridging eth0 into breth0" % host.name in message
    assert "no fresh SSH connection confirmed the change within %ss" % timeout in message
    assert "the guard restored the previous runtime state and ifcfg files at" in message
    assert "delete bridge breth0, which did not exist" in message
    assert "The host is reachable again and runs as before." in message
    assert result.stats[host.name]["unreachable"] == 0  # the role waited for the host, it was not dropped

    # The host restored itself: the same links, addresses and default route, the same files.
    assert runtime_state(host) == before
    assert {name: host.read_file("%s/ifcfg-%s" % (SCRIPTS, name)) for name in ("eth0", "breth0")} == files_before
    outcome = guard_outcome(host)
    assert outcome["rolled_back"] is True and outcome["decided_by"] == "watcher"
    assert outcome["reason"] == "no confirmation within %ds" % timeout
    # And it answers over SSH again.
    assert any_ansible.module(host, "ansible.builtin.ping")["ping"] == "pong"
    print("rollback run took %.1fs with a %ds guard timeout" % (elapsed, timeout))
    assert elapsed < timeout + 120


def test_a_failed_step_is_rolled_back_at_once(host, ansible):
    """A step that fails while the host is reachable: the role rolls back at once, without waiting for the timeout."""
    before = runtime_state(host)
    ifcfg_eth1 = host.read_file("%s/ifcfg-eth1" % SCRIPTS)
    started = time.monotonic()
    # The gateway is outside the address's subnet: `ip route replace default via` fails after the bridging.
    result = ansible.playbook(
        PLAYBOOK,
        hosts=[host],
        extra_vars={
            "host_bridge_nic": "eth1",
            "host_bridge_name": "breth1",
            "host_bridge_bootproto": "static",
            "host_bridge_addresses": ["198.19.0.60/24"],
            "host_bridge_gateway": "198.18.254.254",
            "host_bridge_rollback_timeout": 300,
        },
    )
    elapsed = time.monotonic() - started
    assert result.rc != 0
    message = failure_message(result, host)
    assert "bridging eth1 into breth1 failed, 'Set the static addresses and the default route of the bridge at runtime' failed" in message
    assert "the guard restored the previous runtime state and ifcfg files" in message
    assert elapsed < 300, "the role waited for the guard's timeout instead of rolling back at once"
    assert runtime_state(host) == before
    assert "breth1" not in links(host)
    assert host.read_file("%s/ifcfg-eth1" % SCRIPTS) == ifcfg_eth1
    assert host.read_file("%s/ifcfg-breth1" % SCRIPTS) is None
    outcome = guard_outcome(host)
    assert outcome["rolled_back"] is True and outcome["decided_by"] == "rollback action"


def test_check_mode_changes_nothing(host, ansible):
    before = runtime_state(host)
    files_before = {name: host.read_file("%s/ifcfg-%s" % (SCRIPTS, name)) for name in ("eth0", "breth0")}
    result = ansible.playbook(PLAYBOOK, hosts=[host], check=True)
    assert result.rc == 0, result.output
    assert result.stats[host.name]["changed"] > 0  # it says what it would do
    bridge = task_results(result, host, BRIDGE_TASK)[0]
    assert "attach eth0 to breth0" in bridge["actions"]
    assert runtime_state(host) == before
    assert {name: host.read_file("%s/ifcfg-%s" % (SCRIPTS, name)) for name in ("eth0", "breth0")} == files_before
    assert guard_outcome(host) is None


def test_static_address_on_a_lan_nic_is_set_persistently_and_at_runtime(host, ansible):
    extra = {
        "host_bridge_nic": "eth1",
        "host_bridge_name": "breth1",
        "host_bridge_bootproto": "static",
        "host_bridge_addresses": ["198.19.0.61/24"],
        "host_bridge_dns": ["198.19.0.1"],
    }
    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra)
    assert result.rc == 0, result.output
    assert ipv4(host, "breth1") == ["198.19.0.61/24"]
    assert links(host)["eth1"]["master"] == "breth1"
    bridge = ifcfg(host, "breth1")
    assert (bridge["BOOTPROTO"], bridge["IPADDR"], bridge["PREFIX"], bridge["DNS1"]) == ("static", "198.19.0.61", "24", "198.19.0.1")
    assert "GATEWAY" not in bridge
    # The management connection was never touched.
    assert default_route(host)[0][1] == "eth0"
    # The host answers on the LAN through the bridge.
    assert host.run(["ping", "-c", "1", "-W", "2", "198.19.0.1"], check=False).returncode == 0
    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra)
    assert again.rc == 0 and again.stats[host.name]["changed"] == 0, again.output


def test_runtime_only_without_files(host, ansible):
    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars={"host_bridge_nic": "eth1", "host_bridge_name": "breth1", "host_bridge_persist": False})
    assert result.rc == 0, result.output
    assert links(host)["eth1"]["master"] == "breth1"
    assert host.read_file("%s/ifcfg-breth1" % SCRIPTS) is None
    assert "BRIDGE" not in ifcfg(host, "eth1")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"host_bridge_nic": "eth9"}, "The NIC eth9 does not exist on this host; it has eth0, eth1, lo."),
        ({"host_bridge_nic": "breth0"}, "host_bridge_nic names the bridge itself (breth0); name the NIC to bridge."),
        ({"host_bridge_bootproto": "static"}, "host_bridge_bootproto: static needs host_bridge_addresses"),
        ({"host_bridge_stp": True}, "With host_bridge_stp: true the kernel needs host_bridge_forward_delay between 2 and 30 seconds."),
    ],
)
def test_bad_input_fails_before_anything_changes(host, ansible, extra, expected):
    before = runtime_state(host)
    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra)
    assert result.rc != 0
    assert expected in failure_message(result, host)
    assert runtime_state(host) == before
    assert guard_outcome(host) is None


def test_without_pyroute2_and_no_install_it_fails_clearly(host, ansible):
    """This machine's /usr/bin/python3 has no pyroute2; with the install turned off the role says what to do."""
    before = runtime_state(host)
    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars={"ansible_python_interpreter": "/usr/bin/python3", "host_bridge_install_pyroute2": False})
    assert result.rc != 0
    assert "The host's Python (/usr/bin/python3) cannot import pyroute2 and host_bridge_install_pyroute2 is false." in failure_message(result, host)
    assert runtime_state(host) == before

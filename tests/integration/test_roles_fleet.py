"""Acceptance 6, the fleet: playbooks/site.yml on 20 lab hosts with forks 10, then again.

With its defaults site.yml bridges each host's eth0, the NIC that carries the SSH
connection and the default route, under the rollback guard; makes isolbr0; turns
forwarding on and removes the stock REJECT rule (half of the hosts have it, runtime and
saved); runs the doctor, which must find nothing. Every host must end ok, and the second
run must report changed=0 everywhere.
"""

from __future__ import annotations

import json
import os
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = os.path.join(ROOT, "playbooks", "site.yml")
FLEET = 20
FORKS = 10
# The lab hosts run no NetworkManager, but they share the machine's process table, where
# another lab's NetworkManager may run: the doctor's 'auto' (pgrep) would see that one.
SITE_VARS = {"doctor_network_manager": "stopped"}
# The host_bridge role's one task (the kvmhost.bridging.host_bridge action).
BRIDGE_TASK = "Bridge the NIC (plan, arm the guard, apply, confirm over a fresh connection)"


@pytest.fixture
def fleet(lab):
    hosts = []
    try:
        for index in range(FLEET):
            hosts.append(lab.add_host(stock_firewall=index % 2 == 1))
        for host in hosts:  # /run is the machine's: nothing of an earlier host of the same name and namespace inode
            host.run(["sh", "-c", 'rm -f /run/kvmhost-bridging/guard-host_bridge-"$1".net"$(stat -L -c %i /proc/self/ns/net)".*', "sh", host.name])
        yield hosts
    finally:
        for host in hosts:
            host.run(["sh", "-c", 'rm -f /run/kvmhost-bridging/guard-host_bridge-"$1".net"$(stat -L -c %i /proc/self/ns/net)".*', "sh", host.name], check=False)
            lab.remove_host(host)


def doctor_problems(played):
    """The doctor's findings per host, from its 'Check for the common failures' task."""
    found = [r for r in played.results if r["task"].endswith("Check for the common failures")]
    return {r["host"]: r["result"]["ansible_facts"]["doctor_problems"] for r in found}


def test_site_on_twenty_hosts(fleet, ansible):
    peers = {host.name: host.peer_address for host in fleet}
    stock = {host.name: host.read_file("/etc/sysconfig/iptables").splitlines() for host in fleet if host.read_file("/etc/sysconfig/iptables") is not None}
    assert len(stock) == FLEET // 2
    started = time.monotonic()
    first = ansible.playbook(SITE, hosts=fleet, forks=FORKS, timeout=1800, extra_vars=SITE_VARS)
    first_time = time.monotonic() - started
    assert first.rc == 0, first.output[-6000:]
    assert sorted(first.stats) == sorted(h.name for h in fleet)
    for host in fleet:
        stats = first.stats[host.name]
        assert stats["failures"] == 0 and stats["unreachable"] == 0 and stats["changed"] > 0, (host.name, stats)

    confirms = [r["result"]["guard"]["decision"] for r in first.results if r["task"].endswith(BRIDGE_TASK)]
    assert len(confirms) == FLEET and all(c["confirmed"] for c in confirms)
    margins = sorted(c["remaining"] for c in confirms)

    for host in fleet:
        links = {rec["ifname"]: rec for rec in json.loads(host.run(["ip", "-j", "link", "show"]).stdout)}
        assert links["eth0"]["master"] == "breth0" and links["breth0"]["address"] == links["eth0"]["address"]
        assert "isolbr0" in links
        routes = json.loads(host.run(["ip", "-j", "-4", "route", "show", "default"]).stdout)
        assert [(r["gateway"], r["dev"]) for r in routes] == [(peers[host.name], "breth0")]
        assert host.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
        assert "REJECT" not in host.run(["iptables", "-S", "FORWARD"]).stdout
        assert "BRIDGE=breth0" in host.read_file("/etc/sysconfig/network-scripts/ifcfg-eth0").splitlines()
        if host.name in stock:  # the saved rules: FORWARD's REJECT gone, the rest as it was
            saved = host.read_file("/etc/sysconfig/iptables").splitlines()
            assert saved == [line for line in stock[host.name] if line != "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"]
            assert "-A INPUT -j REJECT --reject-with icmp-host-prohibited" in saved
            host.run(["iptables-restore", "--test", "/etc/sysconfig/iptables"])
        else:
            assert host.read_file("/etc/sysconfig/iptables") is None

    # The doctor ran on every host, last, and found nothing wrong with what the roles made.
    assert doctor_problems(first) == {host.name: [] for host in fleet}
    reports = {r["host"]: r["result"]["msg"] for r in first.results if r["task"].endswith("Print the report")}
    assert sorted(reports) == sorted(h.name for h in fleet)
    assert all(any(line.strip().startswith("checks run: ") for line in report) for report in reports.values()), reports

    started = time.monotonic()
    second = ansible.playbook(SITE, hosts=fleet, forks=FORKS, timeout=1800, extra_vars=SITE_VARS)
    second_time = time.monotonic() - started
    assert second.rc == 0, second.output[-6000:]
    for host in fleet:
        stats = second.stats[host.name]
        assert stats["changed"] == 0 and stats["failures"] == 0 and stats["unreachable"] == 0, (host.name, stats)
    assert not [r for r in second.results if r["task"].endswith(BRIDGE_TASK) and "guard" in r["result"]]
    assert doctor_problems(second) == {host.name: [] for host in fleet}

    print(
        "\nsite.yml on %d hosts, forks %d: first run %.1fs, second run %.1fs; guard margin left at confirmation: "
        "min %.1fs, median %.1fs of 60s" % (FLEET, FORKS, first_time, second_time, margins[0], margins[len(margins) // 2])
    )

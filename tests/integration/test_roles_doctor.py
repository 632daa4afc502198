"""The doctor role: each common failure made for real on a lab host, found, named, with its fix; nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCTOR = os.path.join(ROOT, "playbooks", "doctor.yml")
HOST_BRIDGE = os.path.join(ROOT, "playbooks", "host_bridge.yml")
FORWARDING = os.path.join(ROOT, "playbooks", "forwarding.yml")
ISOLATED = os.path.join(ROOT, "playbooks", "isolated_bridge.yml")
SCRIPTS = "/etc/sysconfig/network-scripts"
CHECKS = ["forwarding", "reject_rule", "empty_bridge", "stp", "multicast_mac", "nic_address", "nm_controlled", "bridge_mac"]

# A stand-in for QEMU: holds tap vnet9 open, with a guest name and a multicast MAC on its command line.
FAKE_QEMU = textwrap.dedent("""\
    import fcntl, os, struct, sys, time
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"vnet9", 0x0002 | 0x1000))  # TUNSETIFF, IFF_TAP | IFF_NO_PI
    print("holding", flush=True)
    time.sleep(600)
""")


def doctor(ansible, host, **extra):
    result = ansible.playbook(DOCTOR, hosts=[host], extra_vars=extra or None)
    found = [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith("Check for the common failures")]
    report = [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith("Print the report")]
    problems = found[0]["ansible_facts"]["doctor_problems"] if found else None
    return result, problems, "\n".join(report[0]["msg"]) if report else ""


def by_check(problems):
    out = {}
    for problem in problems:
        out.setdefault(problem["check"], []).append(problem)
    return out


def state(host):
    """What a read-only role must not change: links, addresses, routes, rules, sysctls, files (not STP timers or counters)."""
    links = json.loads(host.run(["ip", "-j", "link", "show"]).stdout)
    addresses = json.loads(host.run(["ip", "-j", "addr", "show"]).stdout)
    files = host.run(["sh", "-c", "cat /etc/sysconfig/network-scripts/ifcfg-* /etc/sysconfig/iptables /etc/sysctl.d/* 2>/dev/null"], check=False).stdout
    return {
        "links": sorted((r["ifname"], r.get("master"), r["address"], r["mtu"], "UP" in r["flags"]) for r in links),
        "addresses": sorted((r["ifname"], a["local"], a["prefixlen"]) for r in addresses for a in r.get("addr_info", [])),
        "routes": host.run(["ip", "-4", "route", "show", "table", "main"]).stdout,
        "rules": host.run(["iptables", "-S"]).stdout,
        "forwarding": host.run(["sysctl", "-n", "net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"]).stdout,
        "files": files,
    }


def test_a_healthy_host_has_no_problem(host, ansible):
    assert ansible.playbook(HOST_BRIDGE, hosts=[host], extra_vars={"host_bridge_nic": "eth1", "host_bridge_name": "breth1"}).rc == 0
    assert ansible.playbook(FORWARDING, hosts=[host]).rc == 0
    host.add_guest(bridge="breth1")
    result, problems, report = doctor(ansible, host, doctor_fail_on_problems=True, doctor_network_manager="stopped")
    assert result.rc == 0, result.output
    assert problems == []
    assert report.startswith("doctor: %s: 0 problem(s) found." % host.name)
    assert "checks run: " + ", ".join(CHECKS) in report
    assert "breth1" in report  # bridge_info's own report follows
    assert result.stats[host.name]["changed"] == 0


def test_every_common_failure_is_named_with_its_fix(stock_host, ansible):
    host = stock_host
    # forwarding: a private network with a host address, and forwarding off.
    isolated = {"isolated_bridge_name": "isol1", "isolated_bridge_address": "198.19.40.1/24"}
    assert ansible.playbook(ISOLATED, hosts=[host], extra_vars=isolated).rc == 0
    # reject_rule, nic_address, bridge_mac, nm_controlled: eth1 bridged by hand, keeping its address, the bridge with
    # another MAC, its file NM_CONTROLLED=no while NetworkManager runs, the stock REJECT rule and bridge-nf-call-iptables=1.
    batch = [
        "link add brbad address 02:00:00:00:00:99 type bridge stp_state 0 forward_delay 0",
        "link set brbad up",
        "link set eth1 master brbad",
        "address add 198.19.0.77/24 dev eth1",
    ]
    host.run(["ip", "-batch", "-"], input="\n".join(batch) + "\n")
    host.run(["sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"])
    host.write_file("%s/ifcfg-eth1" % SCRIPTS, "DEVICE=eth1\nBRIDGE=brbad\nBOOTPROTO=none\nONBOOT=yes\nNM_CONTROLLED=no\n")
    # empty_bridge: a bridge nothing is plugged into, and no file.
    host.run(["ip", "link", "add", "brempty", "type", "bridge"])
    # multicast_mac: a guest holding vnet9 on brbad with a multicast MAC.
    qemu = host.popen(
        ["python3", "-c", FAKE_QEMU, "-name", "guest=vm9", "-device", "virtio-net-pci,netdev=hostnet0,mac=53:54:00:12:34:56"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert qemu.stdout.readline().strip() == "holding"
        host.run(["ip", "link", "set", "vnet9", "master", "brbad", "up"])
        # stp: STP with a 30 s forward delay; the new port is listening for 30 s.
        host.run(["ip", "link", "add", "brstp", "type", "bridge", "stp_state", "1", "forward_delay", "3000"])
        host.run(["ip", "link", "set", "brstp", "up"])
        host.add_guest(bridge="brstp")

        before = state(host)
        result, problems, report = doctor(ansible, host, doctor_network_manager="running")
        assert result.rc == 0, result.output  # it reports; it fails only when asked to
        assert state(host) == before, "the doctor changed the host"
        assert result.stats[host.name]["changed"] == 0
    finally:
        qemu.terminate()
        qemu.wait(timeout=10)

    found = by_check(problems)
    assert sorted(found) == sorted(CHECKS), report
    assert [p["subject"] for p in found["forwarding"]] == ["net.ipv4.ip_forward"]
    assert "isol1 (198.19.40.1/24)" in found["forwarding"][0]["problem"]
    assert "playbooks/forwarding.yml" in found["forwarding"][0]["fix"]
    assert "'-A FORWARD -j REJECT --reject-with icmp-host-prohibited'" in found["reject_rule"][0]["problem"]
    assert "bridged guests get no DHCP lease" in found["reject_rule"][0]["problem"]
    assert [p["subject"] for p in found["empty_bridge"]] == ["brempty"]  # isol1 has its file: a private network, not a problem
    assert [p["subject"] for p in found["stp"]] == ["brstp:vnet0"]
    assert "listening" in found["stp"][0]["problem"] or "learning" in found["stp"][0]["problem"]
    assert [p["subject"] for p in found["multicast_mac"]] == ["vnet9"]
    assert "Guest vm9 on vnet9 (bridge brbad) uses MAC 53:54:00:12:34:56" in found["multicast_mac"][0]["problem"]
    assert [p["subject"] for p in found["nic_address"]] == ["eth1"]
    assert "198.19.0.77/24" in found["nic_address"][0]["problem"]
    # NetworkManager "runs": both files that say NM_CONTROLLED=no are named, the hand-made one and the role's.
    assert sorted(p["subject"] for p in found["nm_controlled"]) == ["ifcfg-eth1", "ifcfg-isol1"]
    assert [p["subject"] for p in found["bridge_mac"]] == ["brbad"]
    mac = json.loads(host.run(["ip", "-j", "link", "show", "eth1"]).stdout)[0]["address"]
    assert "MACADDR=%s" % mac in found["bridge_mac"][0]["fix"]
    for index, problem in enumerate(problems, 1):
        assert "%d. [%s] %s: %s" % (index, problem["check"], problem["subject"], problem["problem"]) in report
        assert "fix: " + problem["fix"] in report

    # Asked to fail: it does, naming the checks.
    failing, _problems, _report = doctor(ansible, host, doctor_network_manager="running", doctor_fail_on_problems=True, doctor_skip=["stp", "multicast_mac"])
    assert failing.rc != 0
    message = next(r["result"]["msg"] for r in failing.results if r["host"] == host.name and r["status"] == "failed")
    assert message == (
        "doctor: %s has 7 problem(s): forwarding, reject_rule, empty_bridge, nic_address, nm_controlled, nm_controlled,"
        " bridge_mac."
        " See the report above for each fix." % host.name
    )

    # The fix it names works: after the forwarding role both forwarding problems are gone.
    assert ansible.playbook(FORWARDING, hosts=[host]).rc == 0
    _result, problems, _report = doctor(ansible, host, doctor_network_manager="running")
    assert "forwarding" not in by_check(problems) and "reject_rule" not in by_check(problems)


@pytest.mark.parametrize(
    ("manager", "value", "found"), [("stopped", "yes", True), ("stopped", "no", False), ("running", "yes", False), ("running", "no", True)]
)
def test_nm_controlled_against_what_runs_the_host(host, ansible, manager, value, found):
    host.run(["ip", "link", "add", "br0", "type", "bridge"])
    host.run(["ip", "link", "set", "eth1", "master", "br0"])
    host.write_file("%s/ifcfg-br0" % SCRIPTS, "DEVICE=br0\nTYPE=Bridge\nBOOTPROTO=none\nNM_CONTROLLED='%s'\n" % value)
    host.write_file("%s/ifcfg-eth1" % SCRIPTS, 'DEVICE=eth1\nBRIDGE="br0"\nNM_CONTROLLED=%s # by hand\n' % value)
    result, problems, _report = doctor(ansible, host, doctor_network_manager=manager, doctor_skip=["bridge_mac"])
    assert result.rc == 0, result.output
    subjects = sorted(p["subject"] for p in problems if p["check"] == "nm_controlled")
    assert subjects == (["ifcfg-br0", "ifcfg-eth1"] if found else [])

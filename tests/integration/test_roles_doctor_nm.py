"""The doctor on a NetworkManager host: ifcfg files left (the leapp inhibitor), and profiles that will not come up at boot."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCTOR = os.path.join(ROOT, "playbooks", "doctor.yml")
CONNS = "/etc/NetworkManager/system-connections"


def doctor(ansible, host):
    result = ansible.playbook(DOCTOR, hosts=[host])
    assert result.rc == 0, result.output
    added = [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith("Check for the common failures")]
    report = [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith("Print the report")]
    return added[0]["ansible_facts"]["doctor_problems"], "\n".join(report[0]["msg"])


def test_a_stock_networkmanager_host_is_healthy(nm_host, ansible):
    problems, report = doctor(ansible, nm_host)
    assert [p for p in problems if p["check"].startswith("nm_")] == []
    assert "nm_ifcfg, nm_boot" in report


def test_ifcfg_files_and_profiles_that_will_not_come_up(nm_host, ansible):
    nm_host.write_file("/etc/sysconfig/network-scripts/ifcfg-eth1", "DEVICE=eth1\nBOOTPROTO=none\nONBOOT=yes\n")
    # eth1's profile becomes a port of a bridge that has no profile, and a bridge profile others can read.
    nm_host.write_file(
        "%s/eth1.nmconnection" % CONNS,
        nm_host.read_file("%s/eth1.nmconnection" % CONNS).replace("autoconnect=true\n", "autoconnect=true\nmaster=brgone\nslave-type=bridge\n"),
        mode="0600",
    )
    nm_host.write_file("%s/br9.nmconnection" % CONNS, "[connection]\nid=br9\ntype=bridge\ninterface-name=br9\n\n[ipv4]\nmethod=disabled\n", mode="0644")
    before = {name: nm_host.read_file("%s/%s" % (CONNS, name)) for name in ("eth1.nmconnection", "br9.nmconnection")}
    problems, report = doctor(ansible, nm_host)
    mine = [p for p in problems if p["check"].startswith("nm_")]
    assert [(p["check"], p["subject"]) for p in mine] == [
        ("nm_ifcfg", "/etc/sysconfig/network-scripts"),
        ("nm_boot", "%s/br9.nmconnection" % CONNS),
        ("nm_boot", "%s/eth1.nmconnection" % CONNS),
    ]
    assert "leapp upgrade to RHEL 10 refuses to start" in mine[0]["problem"] and "(ifcfg-eth1)" in mine[0]["problem"]
    assert "NetworkManager ignores the bridge profile br9" in mine[1]["problem"]
    assert "names the bridge brgone, which has no profile NetworkManager loads" in mine[2]["problem"]
    assert "[nm_ifcfg] /etc/sysconfig/network-scripts" in report
    # Read-only: nothing changed.
    assert {name: nm_host.read_file("%s/%s" % (CONNS, name)) for name in before} == before


def test_a_keyfile_bridge_without_ports_is_a_private_network_not_a_problem(nm_host, ansible):
    made = ansible.playbook(os.path.join(ROOT, "playbooks", "isolated_bridge.yml"), hosts=[nm_host])
    assert made.rc == 0, made.output
    problems, report = doctor(ansible, nm_host)
    assert "isolbr0" in report  # bridge_info's part of the report shows it
    assert [p for p in problems if p["check"] == "empty_bridge"] == []
    nm_host.run(["ip", "link", "add", "brstray", "type", "bridge"])  # a bridge no profile makes is still one
    problems, _report = doctor(ansible, nm_host)
    assert [p["subject"] for p in problems if p["check"] == "empty_bridge"] == ["brstray"]

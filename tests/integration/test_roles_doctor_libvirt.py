"""The doctor's domain_bridge check on lab hosts, with libvirt's test driver as the hypervisor.

Domains are defined in a node file (see test_vm_interface); their bridges are
links, or missing links, of the lab host.
"""

from __future__ import annotations

from test_roles_doctor import CHECKS, DOCTOR, doctor, state
from test_vm_interface import add_bridge, bridge_iface, domain, write_node


def checks_run(report):
    """The ids on the report's 'checks run:' line (other checks, DHCP, firewalld, NetworkManager, come and go with the host)."""
    return [name for name in report.split("checks run: ")[1].splitlines()[0].split(", ") if name]


WEB01 = "3deda32b-04b6-47d0-b36a-b09037689f42"
DB01 = "5cd044d1-9846-4d92-8bb2-850626374163"
APP01 = "9a1c9c5e-2f7b-4c47-9b4e-1d0b7c0e0c01"
OPS01 = "0e7f2b6a-5d1c-4f7e-9a3b-2c8d4e6f8a10"


def on_bridge(mac, bridge, tap):
    """An interface of a running domain whose tap libvirt recorded as ``tap``."""
    return "<interface type='bridge'><mac address='%s'/><source bridge='%s'/><target dev='%s'/></interface>" % (mac, bridge, tap)


def domain_problems(problems):
    return {p["subject"]: p for p in problems if p["check"] == "domain_bridge"}


def test_a_domain_whose_bridge_is_missing_or_no_bridge_is_named_with_its_fix(host, ansible):
    add_bridge(host, "breth0")
    uri = write_node(
        host,
        # healthy: running and defined on breth0
        domain("web01", WEB01, on_bridge("52:54:00:aa:00:01", "breth0", "vm1tap"), running=True),
        # defined on a bridge that is gone: it will not start
        domain("db01", DB01, bridge_iface("52:54:00:bb:00:01", "brgone")),
        # running on eth1, a NIC and no bridge
        domain("app01", APP01, on_bridge("52:54:00:cc:00:01", "eth1", "vm3tap"), running=True),
        # running on a bridge that was deleted under it
        domain("ops01", OPS01, on_bridge("52:54:00:dd:00:01", "brgone", "vm4tap"), running=True),
    )
    before = state(host)
    result, problems, report = doctor(ansible, host, doctor_libvirt_uri=uri, doctor_network_manager="stopped")
    assert result.rc == 0, result.output
    found = domain_problems(problems)
    assert sorted(found) == ["app01:eth1", "db01:brgone", "ops01:brgone"], problems

    db01 = found["db01:brgone"]
    assert db01["problem"] == (
        "Domain db01 has an interface (52:54:00:bb:00:01) on bridge brgone in its persistent definition, but brgone does not "
        "exist on this host: the domain does not start (libvirt: Cannot get interface MTU on 'brgone': No such device)."
    )
    assert db01["fix"].startswith("Create brgone (playbooks/host_bridge.yml bridges a NIC")
    assert "playbooks/vm_network.yml with vm_network_interfaces: [{domain: db01, bridge: <bridge>, mac: 52:54:00:bb:00:01}]" in db01["fix"]

    app01 = found["app01:eth1"]
    assert "in its persistent definition and the running domain, but eth1 is not a bridge" in app01["problem"]
    assert "the domain does not start again once it stops (libvirt: its tap cannot be made a port of eth1)" in app01["problem"]
    assert "its running NIC (vm3tap) is on no bridge, so the guest has no network" in app01["problem"]
    assert app01["fix"].startswith("Bridge eth1 (playbooks/host_bridge.yml with host_bridge_nic: eth1)")

    ops01 = found["ops01:brgone"]
    assert ops01["problem"].endswith(
        "but brgone does not exist on this host: the domain does not start again once it stops (libvirt: Cannot get interface MTU on "
        "'brgone': No such device); its running NIC (vm4tap) is on no bridge, so the guest has no network."
    )
    assert ops01["fix"].endswith("For the running domain, once the bridge is there: ip link set vm4tap master brgone.")

    print("\n" + report)
    assert "[domain_bridge] db01:brgone: Domain db01 has an interface" in report
    assert set(CHECKS) | {"domain_bridge"} <= set(checks_run(report))
    assert "libvirt %s: 4 domains, 3 running" % uri in report  # bridge_info's report follows
    assert state(host) == before
    assert result.stats[host.name]["changed"] == 0

    # doctor_fail_on_problems fails the host for them alone; doctor_skip leaves the check out
    failing = ansible.playbook(DOCTOR, hosts=[host], extra_vars={"doctor_libvirt_uri": uri, "doctor_fail_on_problems": True, "doctor_skip": CHECKS})
    assert failing.rc != 0
    assert "has 3 problem(s): domain_bridge, domain_bridge, domain_bridge. See the report above" in failing.output, failing.output
    skipping, skipped, report = doctor(ansible, host, doctor_libvirt_uri=uri, doctor_skip=["domain_bridge"])
    assert skipping.rc == 0 and domain_problems(skipped) == {}
    assert "domain_bridge" not in checks_run(report)


def test_every_bridge_there_passes(host, ansible):
    add_bridge(host, "breth0")
    add_bridge(host, "brisol")
    uri = write_node(
        host,
        domain("web01", WEB01, on_bridge("52:54:00:aa:00:01", "breth0", "vm1tap") + bridge_iface("52:54:00:aa:00:02", "brisol"), running=True),
        domain("db01", DB01, bridge_iface("52:54:00:bb:00:01", "brisol")),
    )
    result, problems, report = doctor(ansible, host, doctor_libvirt_uri=uri)
    assert result.rc == 0, result.output
    assert domain_problems(problems) == {}
    assert "domain_bridge" in checks_run(report)


def test_without_libvirt_the_check_is_skipped_with_a_note(host, ansible):
    add_bridge(host, "breth0")
    uri = "qemu+unix:///system?socket=/etc/kvmb-vmif/none.sock"
    result, problems, report = doctor(ansible, host, doctor_libvirt_uri=uri)
    assert result.rc == 0, result.output
    assert domain_problems(problems) == {}
    assert set(CHECKS) <= set(checks_run(report)) and "domain_bridge" not in checks_run(report)
    assert "not run: domain_bridge, because libvirt at %s said nothing: not reachable: " % uri in report

    # the default URI on a lab host, which runs no libvirt daemon: no failure, also when the host fails on problems
    result, problems, report = doctor(ansible, host, doctor_fail_on_problems=True, doctor_skip=CHECKS)
    assert result.rc == 0, result.output
    assert problems == []
    assert not set(CHECKS) & set(checks_run(report)) and "domain_bridge" not in checks_run(report)
    assert "not run: domain_bridge, because libvirt at qemu:///system said nothing: not reachable: " in report

    # an empty URI does not ask libvirt
    result, problems, report = doctor(ansible, host, doctor_libvirt_uri="")
    assert result.rc == 0 and domain_problems(problems) == {}
    assert "not run: domain_bridge, because libvirt said nothing: not looked up (libvirt: never)" in report

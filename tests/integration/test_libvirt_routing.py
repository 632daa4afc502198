"""Issue 15: routing between two libvirt networks, both ways, on a lab host running a real libvirtd (iptables backend).

natnet (NAT, virbr2, 198.18.122.0/24) and rtnet (route, virbr1, 198.18.123.0/24);
guest A (a namespace) on virbr2, guest B on virbr1. libvirt's own rules let A
reach B but reject B's new connections to A. The playbook makes both ways work,
keeps A's NAT to the lab LAN, and its network hook puts the rules back after a
network restart; they also stay through a libvirtd restart.
"""

from __future__ import annotations

import json
import os

import kvmb_vm
import kvmblab
import pytest
from test_roles_doctor import doctor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, "playbooks", "libvirt_routing.yml")
MODULE = "kvmhost.bridging.libvirt_routing"
HOOK = "/etc/libvirt/hooks/network.d/50-kvmhost-bridging-routing"
LAN_GATEWAY = "198.19.0.1"  # the lab LAN's own address; the LAN has no route back to the libvirt networks
A_ADDR, B_ADDR = "198.18.122.10", "198.18.123.10"
NETS = {
    "natnet": "<network><name>natnet</name><forward mode='nat'/><bridge name='virbr2'/><ip address='198.18.122.1' prefix='24'/></network>",
    "rtnet": "<network><name>rtnet</name><forward mode='route'/><bridge name='virbr1'/><ip address='198.18.123.1' prefix='24'/></network>",
    # defined, not started: its subnet overlaps natnet's
    "overnet": "<network><name>overnet</name><forward mode='route'/><bridge name='virbr3'/><ip address='198.18.122.129' prefix='25'/></network>",
}
EXTRA = {"libvirt_routing_networks": ["natnet", "rtnet"], "libvirt_routing_restart_libvirtd": False}


def plug(guest, address, gateway):
    guest.run(["ip", "addr", "add", address + "/24", "dev", "eth0"])
    guest.run(["ip", "route", "add", "default", "via", gateway])


def forwarding(host, port):
    """Wait until ``port`` forwards (libvirt's bridges run STP: a new port listens and learns first)."""

    def ready():
        return "state forwarding" in host.run(["bridge", "link", "show", "dev", port]).stdout

    kvmb_vm._wait(ready, 90, "%s forwarding" % port)


def routing_problems(result, host):
    """The doctor's libvirt_routing problems (from 'Check for the common failures', which sets every problem)."""
    found = [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith("Check for the common failures")]
    assert found, result.output
    return {p["subject"]: p for p in found[-1]["ansible_facts"]["doctor_problems"] if p["check"] == "libvirt_routing"}


def firewall(host):
    rules = host.run(["iptables-save"]).stdout
    return "\n".join(line for line in rules.splitlines() if not line.startswith(("#", ":")))


def hook_text(host):
    proc = host.run(["cat", HOOK], check=False)
    return proc.stdout if proc.returncode == 0 else None


@pytest.fixture
def libvirt_lab(lab):
    host = lab.add_host()
    libvirtd = kvmb_vm.Libvirtd(host)
    try:
        libvirtd.start()
        for name, xml_text in NETS.items():
            path = os.path.join(libvirtd.dir, "%s.net.xml" % name)
            with open(path, "w") as handle:
                handle.write(xml_text)
            libvirtd.virsh("net-define", path)
        libvirtd.virsh("net-start", "natnet")
        libvirtd.virsh("net-start", "rtnet")
        guest_a = host.add_guest(bridge="virbr2")
        guest_b = host.add_guest(bridge="virbr1")
        plug(guest_a, A_ADDR, "198.18.122.1")
        plug(guest_b, B_ADDR, "198.18.123.1")
        forwarding(host, guest_a.port)
        forwarding(host, guest_b.port)
        # the host's leg on the lab LAN, for A's NAT to the outside
        host.run(["ip", "link", "set", "eth1", "up"])
        host.run(["ip", "addr", "add", "198.19.0.60/24", "dev", "eth1"])
        yield host, libvirtd, guest_a, guest_b
    finally:
        for name in NETS:
            libvirtd.virsh("net-destroy", name, check=False, timeout=60)
            libvirtd.virsh("net-undefine", name, check=False, timeout=60)
        libvirtd.stop()
        lab.remove_host(host)
    # the teardown left nothing: no namespace of the host or its guests, no recorded libvirtd, virtlogd or QEMU
    assert not [ns for ns in kvmblab.netns_list() if ns == host.netns or ns.startswith(host.netns + "-")]
    with open(lab.state_file) as handle:
        assert not [key for key in json.load(handle)["pids"] if key.startswith(host.name + "-")]


def test_two_libvirt_networks_route_both_ways(libvirt_lab, ansible):
    host, libvirtd, guest_a, guest_b = libvirt_lab

    # before: A -> B works, B -> A is rejected by libvirt's LIBVIRT_FWI
    assert guest_a.ping(B_ADDR)
    assert not guest_b.ping(A_ADDR)
    assert guest_a.ping(LAN_GATEWAY)

    # the doctor names natnet, the direction and the rule
    result, _problems, report = doctor(ansible, host, doctor_libvirt_uri=kvmb_vm.URI, doctor_network_manager="stopped")
    assert result.rc == 0, result.output
    routing = routing_problems(result, host)
    assert sorted(routing) == ["rtnet->natnet"], report
    assert routing["rtnet->natnet"]["problem"] == (
        "New connections from libvirt network rtnet (virbr1) to natnet (virbr2) are rejected by the rule "
        "'-A LIBVIRT_FWI -o virbr2 -j REJECT --reject-with icmp-port-unreachable' in chain LIBVIRT_FWI while natnet -> rtnet "
        "passes: a one-way ping."
    )
    assert routing["rtnet->natnet"]["fix"].startswith(
        "natnet is NAT: libvirt accepts only replies into 198.18.122.0/24; run playbooks/libvirt_routing.yml with libvirt_routing_networks=[natnet, rtnet]"
    )
    assert "libvirt routing: new connections natnet -> rtnet passes: -A LIBVIRT_FWI -d 198.18.123.0/24 -o virbr1 -j ACCEPT, chain LIBVIRT_FWI" in report
    assert "libvirt routing: new connections the LAN -> natnet is rejected (REJECT)" in report

    # --check --diff: nothing changes, the change is shown
    before = firewall(host)
    checked = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=EXTRA, check=True, diff=True)
    assert checked.rc == 0, checked.output
    assert checked.changed(host) >= 1
    assert "-A LIBVIRT_FWX -i virbr1 -o virbr2 -s 198.18.123.0/24 -d 198.18.122.0/24" in checked.output
    assert HOOK in checked.output
    assert firewall(host) == before and hook_text(host) is None
    assert not guest_b.ping(A_ADDR)

    # unknown names and overlapping subnets: a clear error and no change
    for networks, words in (
        (["natnet", "nonet"], "Unknown libvirt network(s): nonet"),
        (["natnet", "rtnet", "overnet"], "libvirt networks natnet (198.18.122.0/24) and overnet (198.18.122.128/25) overlap"),
    ):
        failed = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=dict(EXTRA, libvirt_routing_networks=networks))
        assert failed.rc != 0 and words in failed.output, failed.output
        assert firewall(host) == before and hook_text(host) is None

    # the playbook: both ways, A keeps its NAT to the LAN
    played = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=EXTRA)
    assert played.rc == 0, played.output
    assert played.changed(host) == 1
    assert "natnet: hook: NAT kept to the outside" in played.output
    assert guest_b.ping(A_ADDR) and guest_a.ping(B_ADDR)
    assert guest_a.ping(LAN_GATEWAY)
    assert "#!" in hook_text(host)
    assert host.run(["test", "-x", HOOK], check=False).returncode == 0

    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=EXTRA)
    assert again.rc == 0 and again.changed(host) == 0, again.output
    result, _problems, report = doctor(ansible, host, doctor_libvirt_uri=kvmb_vm.URI, doctor_network_manager="stopped")
    assert routing_problems(result, host) == {}, report
    assert "0 problem(s) found" in report
    assert "libvirt routing: new connections rtnet -> natnet passes: -A LIBVIRT_FWX -s 198.18.123.0/24 -d 198.18.122.0/24" in report

    # libvirtd reads its hooks when it starts: the role's handler restarts it (here the lab's way, no service manager)
    libvirtd.stop()
    libvirtd.start()
    assert guest_b.ping(A_ADDR) and guest_a.ping(B_ADDR)

    # a network restart: libvirt rebuilds its rules, the hook puts ours back in front
    libvirtd.virsh("net-destroy", "natnet")
    libvirtd.virsh("net-start", "natnet")
    host.run(["ip", "link", "set", guest_a.port, "master", "virbr2"])  # the guest's NIC back on the new bridge
    forwarding(host, guest_a.port)
    prt = host.run(["iptables", "-t", "nat", "-S", "LIBVIRT_PRT"]).stdout.splitlines()
    assert "kvmhost.bridging" in prt[1] and "198.18.123.0/24" in prt[1], prt  # the hook ran: ours is above libvirt's new rules
    assert guest_b.ping(A_ADDR, count=2) and guest_a.ping(B_ADDR)
    assert guest_a.ping(LAN_GATEWAY)
    after = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=EXTRA)
    assert after.rc == 0 and after.changed(host) == 0, after.output

    # a simulated reboot: libvirtd stopped, its bridges and every firewall rule gone, libvirtd started again;
    # the autostarted networks come back and the hook puts the routing back
    libvirtd.virsh("net-autostart", "natnet")
    libvirtd.virsh("net-autostart", "rtnet")
    libvirtd.stop()
    # what a reboot takes away: the networks' dnsmasq (by the PID libvirt recorded), /run's state, the bridges, the rules
    for name in ("natnet", "rtnet"):
        pid = host.run(["cat", "/run/libvirt/network/%s.pid" % name], check=False).stdout.strip()
        if pid.isdigit():
            host.run(["kill", pid], check=False)
    host.run(["find", "/run/libvirt/network", "-mindepth", "1", "-delete"])
    for bridge in ("virbr1", "virbr2"):
        host.run(["ip", "link", "del", bridge])
    for table in ("filter", "nat", "mangle"):
        host.run(["iptables", "-t", table, "-F"])
        host.run(["iptables", "-t", table, "-X"])
    assert "kvmhost.bridging" not in firewall(host)
    libvirtd.start()
    kvmb_vm._wait(lambda: "kvmhost.bridging" in firewall(host), 60, "the hook's rules after libvirtd started")
    host.run(["ip", "link", "set", guest_a.port, "master", "virbr2"])
    host.run(["ip", "link", "set", guest_b.port, "master", "virbr1"])
    forwarding(host, guest_a.port)
    forwarding(host, guest_b.port)
    assert guest_b.ping(A_ADDR, count=2) and guest_a.ping(B_ADDR)
    assert guest_a.ping(LAN_GATEWAY)

    # state=absent takes it all away
    removed = ansible.module(host, MODULE, {"state": "absent"})
    assert removed["changed"] and not removed.get("failed"), removed
    assert hook_text(host) is None
    assert "kvmhost.bridging" not in firewall(host)
    assert not guest_b.ping(A_ADDR)


def test_forward_mode_route_and_open_instead_of_rules(libvirt_lab, ansible):
    """The other method: natnet's forward mode becomes route (no NAT), through libvirt's own definition."""
    host, libvirtd, guest_a, guest_b = libvirt_lab
    extra = dict(EXTRA, libvirt_routing_methods={"natnet": "route"})
    assert not guest_b.ping(A_ADDR)
    defined = libvirtd.virsh("net-dumpxml", "--inactive", "natnet").stdout
    assert "<forward mode='nat'" in defined

    # --check --diff: the new definition is shown, nothing changes
    checked = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra, check=True, diff=True)
    assert checked.rc == 0 and checked.changed(host) == 1, checked.output
    assert "libvirt network natnet (definition)" in checked.output and '<forward mode="route" />' in checked.output
    assert libvirtd.virsh("net-dumpxml", "--inactive", "natnet").stdout == defined
    assert not guest_b.ping(A_ADDR)

    played = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra)
    assert played.rc == 0 and played.changed(host) == 1, played.output
    assert "natnet: forward mode route: changed from nat in libvirt's definition" in played.output
    assert "rtnet: forward mode route: libvirt's own rules route it to the other networks, nothing to add" in played.output
    assert "<forward mode='route'/>" in libvirtd.virsh("net-dumpxml", "--inactive", "natnet").stdout
    assert "<forward mode='route'/>" in libvirtd.virsh("net-dumpxml", "natnet").stdout  # restarted with it
    # no rules and no hook of ours: libvirt's own rules route between two routed networks
    assert hook_text(host) is None and "kvmhost.bridging" not in firewall(host)
    host.run(["ip", "link", "set", guest_a.port, "master", "virbr2"])  # the restart made a new bridge
    forwarding(host, guest_a.port)
    assert guest_b.ping(A_ADDR, count=2) and guest_a.ping(B_ADDR)
    assert not guest_a.ping(LAN_GATEWAY)  # the price of route mode: no NAT, and the lab LAN has no route back
    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra)
    assert again.rc == 0 and again.changed(host) == 0, again.output
    result, _problems, report = doctor(ansible, host, doctor_libvirt_uri=kvmb_vm.URI, doctor_network_manager="stopped")
    assert routing_problems(result, host) == {}, report

    # the definition persists through a libvirtd restart and a network restart
    libvirtd.stop()
    libvirtd.start()
    libvirtd.virsh("net-destroy", "natnet")
    libvirtd.virsh("net-start", "natnet")
    host.run(["ip", "link", "set", guest_a.port, "master", "virbr2"])
    forwarding(host, guest_a.port)
    assert guest_b.ping(A_ADDR, count=2) and guest_a.ping(B_ADDR)

    # open mode for rtnet: libvirt adds no rules for it at all; both ways still pass
    extra_open = dict(EXTRA, libvirt_routing_method="open", libvirt_routing_methods={"natnet": "route"})
    opened = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra_open)
    assert opened.rc == 0 and opened.changed(host) == 1, opened.output
    assert "rtnet: forward mode open: changed from route" in opened.output
    assert "<forward mode='open'/>" in libvirtd.virsh("net-dumpxml", "rtnet").stdout
    assert "virbr1" not in firewall(host)
    host.run(["ip", "link", "set", guest_b.port, "master", "virbr1"])
    forwarding(host, guest_b.port)
    assert guest_b.ping(A_ADDR, count=2) and guest_a.ping(B_ADDR)
    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra_open)
    assert again.rc == 0 and again.changed(host) == 0, again.output


# The lab host has no service manager (its PID 1 is the machine's, not systemd; /run is the host's own tmpfs), so
# ansible.builtin.service falls back to `service libvirtd restart`, which runs /etc/init.d/libvirtd. This one (in the
# host's own /etc overlay) restarts the lab's libvirtd the way an init script does: stop by its pid file, start again.
INIT_SCRIPT = """\
#!/bin/sh
# kvmb lab: libvirtd's init script inside one lab host
pid() { cat /run/libvirtd.pid 2>/dev/null; }
alive() { [ -n "$1" ] && [ -e "/proc/$1" ] && ! grep -q '^State:.*zombie' "/proc/$1/status" 2>/dev/null; }
running() { alive "$(pid)"; }
case "$1" in
  status) running ;;
  stop) if running; then p=$(pid); kill "$p"; n=0; while alive "$p" && [ "$n" -lt 300 ]; do sleep 0.2; n=$((n+1)); done; ! alive "$p"; fi ;;
  start) running || libvirtd -d -f /etc/libvirt/libvirtd.conf ;;
  restart) "$0" stop && "$0" start ;;
  *) exit 3 ;;
esac
"""


def libvirtd_pid(host):
    return int(host.run(["cat", "/run/libvirtd.pid"]).stdout.strip())


def test_the_role_restarts_libvirtd_once_so_that_it_runs_the_new_hook(libvirt_lab, ansible):
    host, libvirtd, guest_a, guest_b = libvirt_lab
    host.write_file("/etc/init.d/libvirtd", INIT_SCRIPT, mode="0755")
    before = libvirtd_pid(host)
    try:
        played = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=dict(EXTRA, libvirt_routing_restart_libvirtd=True))
        assert played.rc == 0, played.output
        assert "RUNNING HANDLER [kvmhost.bridging.libvirt_routing : Restart libvirtd so that it runs the network hook]" in played.output
        kvmb_vm._wait(libvirtd.running, 60, "libvirtd after the handler")
        restarted = libvirtd_pid(host)
    finally:
        # the lab stops the libvirtd it knows of: the one the init script started now
        libvirtd._record("libvirtd", libvirtd_pid(host), "libvirtd")
    assert restarted != before
    assert guest_b.ping(A_ADDR) and guest_a.ping(B_ADDR)

    # the restarted libvirtd knows the hook: a network restart gets our rules back on top, with no new run
    libvirtd.virsh("net-destroy", "natnet")
    libvirtd.virsh("net-start", "natnet")
    host.run(["ip", "link", "set", guest_a.port, "master", "virbr2"])
    forwarding(host, guest_a.port)
    prt = host.run(["iptables", "-t", "nat", "-S", "LIBVIRT_PRT"]).stdout.splitlines()
    assert "kvmhost.bridging" in prt[1], prt
    assert guest_b.ping(A_ADDR, count=2) and guest_a.ping(B_ADDR)

    # nothing to change: no handler, the same libvirtd
    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=dict(EXTRA, libvirt_routing_restart_libvirtd=True))
    assert again.rc == 0 and again.changed(host) == 0, again.output
    assert "RUNNING HANDLER" not in again.output
    assert libvirtd_pid(host) == restarted

"""The VM side on real VMs: libvirtd inside a lab host, libvirt domains of type qemu, plain QEMU on taps.

One lab host serves the whole module (libvirtd starts once, the guest web01
boots once): every test leaves the host as it found it, so the order of the
tests does not matter. The host has:

- brisol, an isolated bridge with a dnsmasq of its own (198.18.240.0/24);
- breth0, made by the host_bridge role from eth1 (the lab LAN, 198.19.0.0/24),
  while web01 runs on brisol (the first test; later tests make sure it is there);
- web01, a running guest with one NIC on brisol.

The guests report every lease on their serial console (tests/lab/guest/init),
which is how a test knows that the guest really got its address through a
bridge.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import kvmb_vm
import kvmblab
import pytest
from test_roles_doctor import doctor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_BRIDGE = os.path.join(ROOT, "playbooks", "host_bridge.yml")
VM_NETWORK = os.path.join(ROOT, "playbooks", "vm_network.yml")
VMIF = "kvmhost.bridging.vm_interface"
INFO = "kvmhost.bridging.bridge_info"
URI = kvmb_vm.URI

ISOLATED_NET = "198.18.240.0/24"
LAN_NET = "198.19.0.0/24"
WEB01_MAC = "52:54:00:a0:00:01"


def interfaces(domain_xml):
    """[(type, mac, source bridge)] of a domain XML."""
    out = []
    for elem in ET.fromstring(domain_xml).findall("./devices/interface"):  # noqa: S314 (libvirt's own output)
        source = elem.find("source")
        out.append((elem.get("type"), elem.find("mac").get("address"), source.get("bridge") if source is not None else None))
    return out


def make_isolated_bridge(host):
    """brisol at 198.18.240.1/24 with a dnsmasq of its own (inside the host: stopped with the host's namespace)."""
    host.run(["ip", "link", "add", "brisol", "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    host.run(["ip", "addr", "add", "198.18.240.1/24", "dev", "brisol"])
    host.run(["ip", "link", "set", "brisol", "up"])
    hdir = os.path.join(host.lab.state_dir, "hosts", host.name)
    host.popen(
        [
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--interface=brisol",
            "--except-interface=lo",
            "--dhcp-range=198.18.240.100,198.18.240.200,255.255.255.0,10m",
            "--dhcp-authoritative",
            "--dhcp-leasefile=%s" % os.path.join(hdir, "brisol.leases"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def bridge_lan(ansible, host):
    """breth0 from eth1 (the LAN), with the collection's host_bridge role."""
    played = ansible.playbook(HOST_BRIDGE, hosts=[host], extra_vars={"host_bridge_nic": "eth1"})
    assert played.rc == 0, played.output
    return played


def ensure_lan(ansible, host):
    """breth0 for tests that need it, made once per module (the role's own test is the first test)."""
    if host.run(["ip", "link", "show", "breth0"], check=False).returncode != 0:
        bridge_lan(ansible, host)


@pytest.fixture(scope="module")
def vms(lab):
    host = lab.add_host()
    try:
        make_isolated_bridge(host)
        libvirtd = kvmb_vm.Libvirtd(host).start()
        web01 = libvirtd.define("web01", [kvmb_vm.bridge_nic("brisol", WEB01_MAC)], start=True)
        web01.console.wait_lease(WEB01_MAC, network=ISOLATED_NET)
        yield host, libvirtd, web01
    finally:
        lab.remove_host(host)


def vmif(ansible, host, diff=False, **args):
    return ansible.module(host, VMIF, {"uri": URI, **args}, diff=diff)


def test_host_bridge_while_a_guest_runs_then_the_guest_moves_to_the_lan(vms, ansible):
    host, _libvirtd, web01 = vms
    played = bridge_lan(ansible, host)
    assert played.stats[host.name]["failures"] == 0
    assert web01.state() == "running"
    # the guest on the isolated bridge kept its network through the change
    assert host.run(["ping", "-c", "1", "-W", "2", web01.console.leases()[-1][2]], check=False).returncode == 0

    since = web01.console.mark()
    moved = vmif(ansible, host, domain="web01", bridge="breth0", mac=WEB01_MAC)
    assert moved["changed"] is True, moved
    web01.renew(WEB01_MAC)
    assert web01.console.wait_lease(WEB01_MAC, since=since, network=LAN_NET)
    # (web01 stays on breth0: the other tests do not depend on where its first NIC is)


def test_vm_interface_attach_lease_move_detach_on_a_real_domain(vms, ansible):
    host, libvirtd, web01 = vms
    ensure_lan(ansible, host)
    mac = "52:54:00:a0:00:02"
    db01 = libvirtd.define("db01", [])
    try:
        # a defined (shut off) domain: the persistent definition only, and again: nothing
        attach = vmif(ansible, host, domain="db01", bridge="breth0", mac="52:54:00:b0:00:01")
        assert attach["changed"] is True, attach
        assert interfaces(db01.xml(inactive=True)) == [("bridge", "52:54:00:b0:00:01", "breth0")]
        assert vmif(ansible, host, domain="db01", bridge="breth0", mac="52:54:00:b0:00:01")["changed"] is False

        # the running domain: hot plug (live) and the definition (config); the guest leases on the new NIC
        since = web01.console.mark()
        attach = vmif(ansible, host, domain="web01", bridge="breth0", mac=mac)
        assert attach["changed"] is True, attach
        assert ("bridge", mac, "breth0") in interfaces(web01.xml())
        assert ("bridge", mac, "breth0") in interfaces(web01.xml(inactive=True))
        assert web01.console.wait_lease(mac, since=since, network=LAN_NET)
        web01.console.wait_line(r"^KVMB ping \S+ 198\.19\.0\.1 ok", since=since)
        again = vmif(ansible, host, domain="web01", bridge="breth0", mac=mac)
        assert again["changed"] is False, again

        # live move to brisol: the guest's next lease comes from brisol's dnsmasq
        move = vmif(ansible, host, domain="web01", bridge="brisol", mac=mac, diff=True)
        assert move["changed"] is True, move
        assert "brisol" in json.dumps(move["diff"]), move["diff"]
        assert ("bridge", mac, "brisol") in interfaces(web01.xml())
        since = web01.renew(mac)
        assert web01.console.wait_lease(mac, since=since, network=ISOLATED_NET)
        assert vmif(ansible, host, domain="web01", bridge="brisol", mac=mac)["changed"] is False

        # detach: the guest sees its NIC go, the definition loses it, and a second run changes nothing
        since = web01.console.mark()
        detach = vmif(ansible, host, domain="web01", bridge="brisol", mac=mac, state="absent")
        assert detach["changed"] is True, detach
        web01.console.wait_line(r"^KVMB gone eth1", since=since)
        assert [i for i in interfaces(web01.xml()) if i[1] == mac] == []
        assert [i for i in interfaces(web01.xml(inactive=True)) if i[1] == mac] == []
        assert vmif(ansible, host, domain="web01", bridge="brisol", mac=mac, state="absent")["changed"] is False
    finally:
        libvirtd.virsh("undefine", "db01", check=False)
        libvirtd.virsh("detach-interface", "web01", "bridge", "--mac", mac, "--live", "--config", check=False)


def test_a_multicast_mac_is_refused_before_libvirt_is_called(vms, ansible):
    host, _libvirtd, web01 = vms
    live, config = web01.xml(), web01.xml(inactive=True)
    result = vmif(ansible, host, domain="web01", bridge="brisol", mac="11:22:33:44:55:66")
    assert result.get("failed") is True, result
    assert "multicast" in result["msg"] and "cannot assign requested address" in result["msg"], result["msg"]
    # libvirt's own refusal would read "expected unicast mac address, found multicast": the module spoke first
    assert "expected unicast" not in result["msg"]
    assert (web01.xml(), web01.xml(inactive=True)) == (live, config)


def test_bridge_info_names_the_real_domains_behind_their_vnets(vms, ansible):
    host, libvirtd, _web01 = vms
    db01 = libvirtd.define("db01", [kvmb_vm.bridge_nic("brisol", "52:54:00:b0:00:02")], start=True)
    try:
        db01.console.wait_lease("52:54:00:b0:00:02", network=ISOLATED_NET)
        result = ansible.module(host, INFO, {"libvirt_uri": URI})
        assert not result.get("failed"), result
        ports = {p["name"]: p for b in result["bridges"] for p in b["ports"]}
        taps = {name: p for name, p in ports.items() if p["kind"] == "tap"}
        # libvirt's record and QEMU's process agree on who holds each vnetN
        by_domain = {p["domain"]: name for name, p in taps.items()}
        assert sorted(by_domain) == ["db01", "web01"], taps
        for domain_name, tap in by_domain.items():
            assert re.fullmatch(r"vnet\d+", tap)
            assert taps[tap]["guest"] == domain_name
            assert taps[tap]["process"]["pid"] == libvirtd_domain_pid(libvirtd, domain_name)
        assert taps[by_domain["web01"]]["domain_mac"] == WEB01_MAC
        for domain_name, tap in by_domain.items():
            line = next(line for line in result["report"].splitlines() if line.strip().startswith(tap + ":"))
            assert "libvirt domain %s" % domain_name in line, result["report"]
    finally:
        libvirtd.virsh("destroy", "db01", check=False)
        libvirtd.virsh("undefine", "db01", check=False)


def vnet_of(dom, mac):
    """The tap libvirt made for the running domain's NIC ``mac``."""
    for elem in ET.fromstring(dom.xml()).findall("./devices/interface"):  # noqa: S314 (libvirt's own output)
        if elem.find("mac").get("address") == mac:
            return elem.find("target").get("dev")
    raise AssertionError("%s has no NIC %s" % (dom.name, mac))


def libvirtd_domain_pid(libvirtd, name):
    return kvmb_vm.Domain(libvirtd, name, None).pid()


def test_doctor_flags_a_domain_whose_bridge_is_missing_and_libvirt_refuses_it(vms, ansible):
    host, libvirtd, _web01 = vms
    libvirtd.define("ops01", [kvmb_vm.bridge_nic("brgone", "52:54:00:c0:00:01")])
    try:
        result, problems, report = doctor(ansible, host, doctor_libvirt_uri=URI, doctor_network_manager="stopped")
        assert result.rc == 0, result.output
        found = {p["subject"]: p for p in problems if p["check"] == "domain_bridge"}
        assert sorted(found) == ["ops01:brgone"], problems
        assert "does not start" in found["ops01:brgone"]["problem"]
        assert "[domain_bridge] ops01:brgone: Domain ops01 has an interface" in report
        # and libvirt does refuse it, for the reason the doctor gives
        refused = libvirtd.virsh("start", "ops01", check=False)
        assert refused.returncode != 0
        assert "brgone" in refused.stderr, refused.stderr
        reason = re.search(r"\(libvirt: ([^)]*)\)", found["ops01:brgone"]["problem"]).group(1)
        assert reason in refused.stderr, (reason, refused.stderr)
    finally:
        libvirtd.virsh("undefine", "ops01", check=False)


def test_vm_network_role_on_three_real_domains(vms, ansible):
    host, libvirtd, web01 = vms
    ensure_lan(ansible, host)
    db01 = libvirtd.define("db01", [kvmb_vm.bridge_nic("brisol", "52:54:00:b0:00:03")])
    app01 = libvirtd.define("app01", [])
    web_mac = "52:54:00:a0:00:03"
    extra = {
        "vm_network_uri": URI,
        "vm_network_install_libvirt": False,
        "vm_network_interfaces": [
            {"domain": "web01", "bridge": "breth0", "mac": web_mac},
            {"domain": "db01", "bridge": "breth0", "mac": "52:54:00:b0:00:03"},
            {"domain": "app01", "bridge": "brisol", "mac": "52:54:00:d0:00:01"},
        ],
    }
    try:
        since = web01.console.mark()
        first = ansible.playbook(VM_NETWORK, hosts=[host], extra_vars=extra)
        assert first.rc == 0, first.output
        assert first.stats[host.name]["changed"] >= 1
        assert ("bridge", web_mac, "breth0") in interfaces(web01.xml())
        assert interfaces(db01.xml(inactive=True)) == [("bridge", "52:54:00:b0:00:03", "breth0")]
        assert interfaces(app01.xml(inactive=True)) == [("bridge", "52:54:00:d0:00:01", "brisol")]
        web01.console.wait_lease(web_mac, since=since, network=LAN_NET)
        # the shut-off domains start on their new bridges (libvirt checks each bridge at start)
        db01.start()
        app01.start()
        ports = {rec["ifname"]: rec.get("master") for rec in json.loads(host.run(["ip", "-j", "link", "show"]).stdout)}
        assert ports[vnet_of(db01, "52:54:00:b0:00:03")] == "breth0"
        assert ports[vnet_of(app01, "52:54:00:d0:00:01")] == "brisol"

        second = ansible.playbook(VM_NETWORK, hosts=[host], extra_vars=extra)
        assert second.rc == 0, second.output
        assert second.stats[host.name]["changed"] == 0
    finally:
        for name in ("db01", "app01"):
            libvirtd.virsh("destroy", name, check=False)
            libvirtd.virsh("undefine", name, check=False)
        libvirtd.virsh("detach-interface", "web01", "bridge", "--mac", web_mac, "--live", "--config", check=False)


def test_a_plain_qemu_guest_on_a_tap_of_the_tap_module(vms, ansible):
    host, _libvirtd, _web01 = vms
    ensure_lan(ansible, host)
    made = ansible.module(host, "kvmhost.bridging.tap", {"name": "vmtap0", "bridge": "breth0"})
    assert made.get("changed") is True, made
    guest = kvmb_vm.start_qemu(host, "plain01", [("vmtap0", "52:54:00:e0:00:01")])
    try:
        assert guest.console.wait_lease("52:54:00:e0:00:01", network=LAN_NET)
        info = ansible.module(host, INFO, {"libvirt": "never"})
        port = {p["name"]: p for b in info["bridges"] for p in b["ports"]}["vmtap0"]
        assert port["guest"] == "plain01" and port["process"]["pid"] == guest.pid
        assert port["persistent"] is True
    finally:
        guest.stop()
        ansible.module(host, "kvmhost.bridging.tap", {"name": "vmtap0", "state": "absent"})


def test_a_libvirt_domain_on_a_tap_of_the_tap_module(vms, ansible):
    """<interface type='ethernet'> with <target managed='no'>: libvirt opens the tap the module made and leaves it alone."""
    host, libvirtd, _web01 = vms
    ensure_lan(ansible, host)
    made = ansible.module(host, "kvmhost.bridging.tap", {"name": "vmtap1", "bridge": "breth0"})
    assert made.get("changed") is True, made
    try:
        eth01 = libvirtd.define("eth01", [kvmb_vm.ethernet_nic("vmtap1", "52:54:00:e0:00:02")], start=True)
        assert eth01.console.wait_lease("52:54:00:e0:00:02", network=LAN_NET)
        info = ansible.module(host, INFO, {"libvirt_uri": URI})
        port = {p["name"]: p for b in info["bridges"] for p in b["ports"]}["vmtap1"]
        assert (port["domain"], port["guest"], port["persistent"]) == ("eth01", "eth01", True)
        libvirtd.virsh("destroy", "eth01")
        # libvirt did not delete the tap it did not make: it is still on breth0, and the module finds nothing to do
        again = ansible.module(host, "kvmhost.bridging.tap", {"name": "vmtap1", "bridge": "breth0"})
        assert again.get("changed") is False, again
    finally:
        libvirtd.virsh("destroy", "eth01", check=False)
        libvirtd.virsh("undefine", "eth01", check=False)
        ansible.module(host, "kvmhost.bridging.tap", {"name": "vmtap1", "state": "absent"})


def test_teardown_leaves_no_vm_process(lab):
    """A host with libvirtd and a running domain: removing it stops QEMU, libvirtd and virtlogd by PID."""
    host = lab.add_host()
    try:
        libvirtd = kvmb_vm.Libvirtd(host).start()
        dom = libvirtd.define("tmp01", [], start=True)
        pids = [dom.pid(), *libvirtd.pids()]
        assert len(set(pids)) >= 3 and all(pids)
    finally:
        lab.remove_host(host)
    # gone, or exited and waiting for PID 1 to reap it (a zombie holds no namespace, tap or file)
    alive = [pid for pid in set(pids) if kvmblab._pid_alive(pid) and kvmb_vm._is_vm_process(pid)]
    assert alive == []
    assert host.netns not in kvmblab.netns_list()
    with open(lab.state_file) as handle:
        assert not [key for key in json.load(handle)["pids"] if key.startswith(host.name + "-")]


def test_bridge_info_names_the_libvirt_network_behind_each_bridge(vms, ansible):
    """Issue 15: virbrN is named after its libvirt network, with its forward mode and subnet."""
    _host, libvirtd, _web01 = vms
    nets = {
        "natnet": "<network><name>natnet</name><forward mode='nat'/><bridge name='virbr2'/><ip address='198.18.122.1' prefix='24'/></network>",
        "rtnet": "<network><name>rtnet</name><forward mode='route'/><bridge name='virbr1'/><ip address='198.18.123.1' prefix='24'/></network>",
    }
    try:
        for name, xml_text in nets.items():
            path = os.path.join(libvirtd.dir, "%s.net.xml" % name)
            with open(path, "w") as handle:
                handle.write(xml_text)
            libvirtd.virsh("net-define", path)
        libvirtd.virsh("net-start", "natnet")
        libvirtd.virsh("net-autostart", "natnet")
        libvirtd.virsh("net-start", "rtnet")
        result = ansible.module(libvirtd.host, INFO, {"libvirt_uri": URI})
        assert not result.get("failed"), result
        bridges = {b["name"]: b for b in result["bridges"]}
        assert bridges["virbr2"]["libvirt_network"] == {
            "network": "natnet",
            "bridge": "virbr2",
            "forward": "nat",
            "subnets": ["198.18.122.0/24"],
            "active": True,
            "autostart": True,
        }
        assert bridges["virbr1"]["libvirt_network"]["forward"] == "route"
        assert bridges["brisol"]["libvirt_network"] is None
        assert "  virbr2: libvirt network natnet (NAT, 198.18.122.0/24), active, autostart\n" in result["report"]
        assert "  virbr1: libvirt network rtnet (routed, 198.18.123.0/24), active\n" in result["report"]
    finally:
        for name in nets:
            libvirtd.virsh("net-destroy", name, check=False)
            libvirtd.virsh("net-undefine", name, check=False)

"""The host_bridge role on NetworkManager hosts, over real SSH carried by the NIC being bridged.

Each host runs real NetworkManager (Debian's 1.42) on keyfiles. The controller reaches it at
eth1's LAN address (through the LAN namespace), so bridging eth1 into breth1 moves the very
NIC that carries the SSH session. A guest behind vnet0 on the bridge asks the LAN's dnsmasq
for a lease through the bridge.
"""

from __future__ import annotations

import json
import os

import kvmb_nm
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, "playbooks", "host_bridge.yml")
CONNS = "/etc/NetworkManager/system-connections"
LAN = {"host_bridge_nic": "eth1", "host_bridge_name": "breth1", "host_bridge_rollback_timeout": 90}


@pytest.fixture
def dhcp_host(lab):
    """A NetworkManager host whose eth1 has a DHCP lease from the LAN; SSH goes over eth1."""
    the_host = lab.add_host(networkmanager=True, eth1_method="auto", ssh_via_lan=True)
    try:
        yield the_host
    finally:
        lab.remove_host(the_host)


@pytest.fixture
def static_host(lab):
    """A NetworkManager host whose eth1 has a static LAN address; SSH goes over eth1."""
    the_host = lab.add_host(networkmanager=True, eth1_method="manual", ssh_via_lan=True)
    try:
        yield the_host
    finally:
        lab.remove_host(the_host)


def ssh_address(lab, host):
    return lab.inventory()["all"]["children"]["lab"]["hosts"][host.name]["ansible_host"]


def links(host):
    return {rec["ifname"]: rec for rec in json.loads(host.run(["ip", "-j", "link", "show"]).stdout)}


def ipv4(host, dev):
    out = json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", dev], check=False).stdout or "[]")
    return sorted("%s/%s" % (a["local"], a["prefixlen"]) for rec in out for a in rec.get("addr_info", []))


def profiles(host):
    """The keyfiles on disk as {file: {section: {key: value}}} (values as written), with their modes."""
    out = {}
    for name in host.run(["ls", CONNS]).stdout.split():
        text = host.read_file("%s/%s" % (CONNS, name))
        sections, current = {}, None
        for line in text.splitlines():
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], {})
            elif "=" in line and current is not None:
                key, value = line.split("=", 1)
                current[key] = value
        mode = host.run(["stat", "-c", "%a %U %G", "%s/%s" % (CONNS, name)]).stdout.strip()
        out[name] = {"mode": mode, "sections": sections}
    return out


NM_FIELDS = (
    "connection.id,connection.uuid,connection.type,connection.interface-name,connection.autoconnect,connection.master,"
    "connection.slave-type,802-3-ethernet.mac-address,ipv4.method,ipv4.addresses,ipv4.gateway,ipv4.never-default,ipv6.method"
)


def as_networkmanager_reads(host):
    """Every profile NetworkManager has from a file in /etc, as nmcli shows its settings."""
    out = {}
    for line in host.run(["nmcli", "-g", "UUID,FILENAME", "connection", "show"]).stdout.splitlines():
        uuid, filename = line.split(":", 1)
        if filename.replace("\\:", ":").startswith(CONNS):
            values = host.run(["nmcli", "-g", NM_FIELDS, "connection", "show", "uuid", uuid]).stdout.splitlines()
            out[filename] = dict(zip(NM_FIELDS.split(","), values))
    return out


def nm_device(host, device):
    out = host.run(["nmcli", "-g", "GENERAL.STATE,GENERAL.CONNECTION", "device", "show", device], check=False).stdout
    return out.splitlines()


def failure_message(result, host):
    return "\n".join(
        r["result"].get("msg", "")
        for r in result.results
        if r["host"] == host.name and r["status"] == "failed" and not r["result"].get("_ansible_ignore_errors")
    )


# The role's one task that plans, takes the checkpoint, applies and confirms (the kvmhost.bridging.host_bridge action).
BRIDGE_TASK = "Bridge the NIC (plan, arm the guard, apply, confirm over a fresh connection)"


def task_results(result, host, suffix):
    return [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith(suffix)]


def assert_bridged(host, address, mac):
    assert links(host)["eth1"].get("master") == "breth1"
    assert links(host)["breth1"]["address"] == mac  # the bridge kept the NIC's MAC
    assert ipv4(host, "breth1") == [address]
    assert ipv4(host, "eth1") == []
    assert nm_device(host, "breth1") == ["100 (connected)", "breth1"]
    assert nm_device(host, "eth1") == ["100 (connected)", "eth1"]


def test_bridging_the_dhcp_ssh_nic_survives_a_rerun_and_a_reboot(lab, dhcp_host, ansible):
    host = dhcp_host
    address = ipv4(host, "eth1")
    mac = links(host)["eth1"]["address"]
    assert len(address) == 1 and address[0].startswith("198.19.0.")
    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=LAN)
    assert result.rc == 0, result.output
    assert any(
        "networkmanager with keyfile profiles: NetworkManager 1.42" in r.get("msg", "")
        for r in task_results(result, host, "Say which backend bridges this host, and why")
    )
    assert task_results(result, host, BRIDGE_TASK)[0]["checkpoint"]["destroy"]["changed"] is True
    # The session survived on the same lease, now on the bridge.
    assert_bridged(host, address[0], mac)
    files = profiles(host)
    assert set(files) == {"eth0.nmconnection", "eth1.nmconnection", "breth1.nmconnection"}  # eth1's own profile is the port
    assert all(f["mode"] == "600 root root" for f in files.values())
    bridge, port = files["breth1.nmconnection"]["sections"], files["eth1.nmconnection"]["sections"]
    assert bridge["ipv4"]["method"] == "auto" and bridge["ipv4"]["never-default"] == "true"
    assert bridge["ethernet"]["cloned-mac-address"] == mac.upper()
    assert port["connection"]["master"] == "breth1" and port["connection"]["slave-type"] == "bridge"
    assert "ipv4" not in port
    assert host.run(["nmcli", "-g", "NAME", "connection", "show"]).stdout.split().count("breth1") == 1
    guest = host.add_guest(port="vnet0", bridge="breth1")
    assert guest.dhcp(timeout=20), "the guest got no lease through breth1"

    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=LAN)
    assert again.rc == 0, again.output
    assert again.stats[host.name]["changed"] == 0
    assert "checkpoint" not in task_results(again, host, BRIDGE_TASK)[0]

    # The reboot proof: NetworkManager stops, the runtime bridge and eth1's address go, /run is cleared,
    # and NetworkManager starts again from the keyfiles alone.
    host.stop_networkmanager()
    host.run(["ip", "link", "del", "breth1"])
    host.run(["ip", "addr", "flush", "dev", "eth1"])
    host.run(["rm", "-rf", "/run/NetworkManager"])
    assert "breth1" not in links(host) and ipv4(host, "eth1") == []
    host.start_networkmanager()
    kvmb_nm.wait_device_state(host, "breth1", timeout=90)
    assert_bridged(host, address[0], mac)
    host.run(["ip", "link", "set", "vnet0", "master", "breth1"])  # what libvirt does when the guest starts after the boot
    assert guest.dhcp(timeout=20), "after the restart the guest got no lease through breth1"
    assert ansible.module(host, "ansible.builtin.ping")["ping"] == "pong"


def test_bridging_the_static_ssh_nic(lab, static_host, ansible):
    host = static_host
    address = ipv4(host, "eth1")
    assert address == ["%s/24" % ssh_address(lab, host)]
    mac = links(host)["eth1"]["address"]
    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=LAN)
    assert result.rc == 0, result.output
    assert_bridged(host, address[0], mac)
    bridge = profiles(host)["breth1.nmconnection"]["sections"]
    assert bridge["ipv4"]["method"] == "manual" and bridge["ipv4"]["address1"] == address[0]
    guest = host.add_guest(port="vnet0", bridge="breth1")
    assert guest.dhcp(timeout=20), "the guest got no lease through breth1"
    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=LAN)
    assert again.rc == 0, again.output
    assert again.stats[host.name]["changed"] == 0


def test_check_diff_shows_the_keyfiles_and_changes_nothing(static_host, ansible):
    host = static_host
    before = (profiles(host), ipv4(host, "eth1"), sorted(links(host)))
    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=LAN, check=True, diff=True)
    assert result.rc == 0, result.output
    assert result.stats[host.name]["changed"] > 0
    assert "+cloned-mac-address=%s" % links(host)["eth1"]["address"].upper() in result.output
    assert "+master=breth1" in result.output
    assert "checkpoint" not in task_results(result, host, BRIDGE_TASK)[0]
    assert (profiles(host), ipv4(host, "eth1"), sorted(links(host))) == before
    assert sorted(host.run(["nmcli", "-g", "NAME", "connection", "show"]).stdout.split()) == ["eth0", "eth1", "lo"]


def test_a_wrong_static_address_is_rolled_back_by_networkmanager(static_host, ansible):
    host = static_host
    before = profiles(host)
    networkmanager_before = as_networkmanager_reads(host)
    assert not any(profile["connection.master"] for profile in networkmanager_before.values())
    address = ipv4(host, "eth1")
    timeout = 30
    result = ansible.playbook(
        PLAYBOOK,
        hosts=[host],
        extra_vars=dict(LAN, host_bridge_rollback_timeout=timeout, host_bridge_bootproto="static", host_bridge_addresses=["198.19.0.99/24"]),
    )
    assert result.rc != 0
    message = failure_message(result, host)
    assert (
        "host_bridge: %s: lost connectivity after bridging eth1 into breth1: no fresh SSH connection confirmed the "
        "change within %ss; NetworkManager rolled back its checkpoint when the timeout ran out." % (host.name, timeout)
    ) in message
    assert "The profiles on disk and the devices are as before the change, and the host answers again." in message
    assert result.stats[host.name]["unreachable"] == 0  # the role waited for the host, it was not dropped
    # NetworkManager restored the devices and deleted the new profile; the NIC's profile says what it said.
    assert "breth1" not in links(host) or nm_device(host, "breth1")[0].startswith(("10 ", "20 ", "30 "))
    assert ipv4(host, "eth1") == address
    after = profiles(host)
    assert {name: f["mode"] for name, f in after.items()} == {name: f["mode"] for name, f in before.items()}
    # NetworkManager rewrote the NIC's file in its own words (it drops defaults such as autoconnect=true):
    # compare the profiles as NetworkManager reads them.
    assert as_networkmanager_reads(host) == networkmanager_before
    assert ansible.module(host, "ansible.builtin.ping")["ping"] == "pong"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"host_bridge_nic": "eth9"}, "The NIC eth9 does not exist on this host"),
        ({"host_bridge_backend": "initscripts", "host_bridge_profile_format": "keyfile"}, "profile_format keyfile needs NetworkManager"),
    ],
)
def test_bad_input_fails_before_anything_changes(nm_host, ansible, extra, expected):
    before = (profiles(nm_host), sorted(links(nm_host)))
    result = ansible.playbook(PLAYBOOK, hosts=[nm_host], extra_vars=extra)
    assert result.rc != 0
    assert expected in failure_message(result, nm_host)
    assert (profiles(nm_host), sorted(links(nm_host))) == before

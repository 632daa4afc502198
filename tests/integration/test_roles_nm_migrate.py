"""The migration off ifcfg (playbooks/nm_migrate.yml) on a host that runs as an EL8 network-scripts host does.

The host starts as a NetworkManager lab host whose eth1 has a static LAN address, and the controller reaches it
at that address through the LAN namespace. Then it is made an EL8 network-scripts host: NetworkManager stopped
(installed, not running), ifcfg files for eth0, breth1 (TYPE=Bridge, the LAN address) and eth1 (BRIDGE=breth1,
NM_CONTROLLED=no), and breth1 up at runtime with eth1 as its port, so the SSH session runs over the bridge the
migration hands to NetworkManager. The role starts NetworkManager through the lab's start script (the lab has no
service manager), as a stock host's systemctl would.
"""

from __future__ import annotations

import json
import os

import kvmb_nm
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, "playbooks", "nm_migrate.yml")
DOCTOR = os.path.join(ROOT, "playbooks", "doctor.yml")
SCRIPTS = "/etc/sysconfig/network-scripts"
CONNS = "/etc/NetworkManager/system-connections"
# The lab host's /var/lib is this machine's; its /etc is its own (an overlay): the backups go there.
BACKUPS = "/etc/kvmhost-bridging/ifcfg-backup"


@pytest.fixture
def el8_host(lab):
    the_host = lab.add_host(networkmanager=True, eth1_method="manual", ssh_via_lan=True)
    try:
        the_host.el8 = kvmb_nm.make_network_scripts_host(the_host)
        the_host.start_command = kvmb_nm.install_start_hook(the_host)
        yield the_host
    finally:
        kvmb_nm.adopt(lab, the_host)  # a NetworkManager the role started is stopped by PID with the host
        lab.remove_host(the_host)


def extra(host, **more):
    return {"nm_migrate_start_command": host.start_command, "nm_migrate_backup_dir": BACKUPS, **more}


def links(host):
    return {rec["ifname"]: rec for rec in json.loads(host.run(["ip", "-j", "link", "show"]).stdout)}


def ipv4(host, dev):
    out = json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", dev], check=False).stdout or "[]")
    return sorted("%s/%s" % (a["local"], a["prefixlen"]) for rec in out for a in rec.get("addr_info", []))


def ls(host, path):
    proc = host.run(["ls", "-A", "-1", path], check=False)
    return sorted(proc.stdout.splitlines()) if proc.returncode == 0 else None


def nm_running(host):
    return host.run(["nmcli", "-t", "-f", "RUNNING", "general"], check=False).stdout.strip() == "running"


def nm_device(host, device):
    return host.run(["nmcli", "-g", "GENERAL.STATE,GENERAL.CONNECTION", "device", "show", device], check=False).stdout.splitlines()


def nm_profile(host, name, fields):
    values = host.run(["nmcli", "-g", fields, "connection", "show", "id", name]).stdout.splitlines()
    return dict(zip(fields.split(","), (value.replace("\\:", ":") for value in values)))  # -g escapes ':' as '\:'


def task_results(result, host, suffix):
    return [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith(suffix)]


def assert_bridged(host, address, mac):
    assert links(host)["eth1"].get("master") == "breth1"
    assert links(host)["breth1"]["address"] == mac  # the bridge kept the NIC's MAC, as under network-scripts
    assert ipv4(host, "breth1") == [address]
    assert ipv4(host, "eth1") == []
    assert nm_device(host, "breth1") == ["100 (connected)", "System breth1"]
    assert nm_device(host, "eth1") == ["100 (connected)", "System eth1"]


def test_migration_hands_the_bridge_to_networkmanager_and_survives_a_reboot(lab, el8_host, ansible):
    host = el8_host
    address, mac = host.el8["address"], host.el8["mac"]
    assert not nm_running(host)
    assert ls(host, SCRIPTS) == ["ifcfg-breth1", "ifcfg-eth0", "ifcfg-eth1"] and ls(host, CONNS) == []
    eth0 = ipv4(host, "eth0")

    # --check --diff: the keyfiles and the moves as a diff, nothing changed, NetworkManager not started.
    check = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra(host), check=True, diff=True)
    assert check.rc == 0, check.output
    assert check.stats[host.name]["changed"] > 0
    assert "+master=breth1" in check.output and "+cloned-mac-address=%s" % mac.upper() in check.output
    assert "-BRIDGE=breth1" in check.output
    assert ls(host, SCRIPTS) == ["ifcfg-breth1", "ifcfg-eth0", "ifcfg-eth1"] and ls(host, CONNS) == []
    assert ls(host, BACKUPS) is None and not nm_running(host)

    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra(host))
    assert result.rc == 0, result.output
    assert kvmb_nm.adopt(lab, host).keys() == {"dbus", "NetworkManager"}
    assert task_results(result, host, "Destroy the checkpoint, which confirms the change")[0]["changed"] is True
    assert result.stats[host.name]["unreachable"] == 0
    # NetworkManager runs the devices from the keyfiles; the session went on over the bridge.
    assert_bridged(host, address, mac)
    assert ipv4(host, "eth0") == eth0 and nm_device(host, "eth0") == ["100 (connected)", "System eth0"]
    # No ifcfg file is left; they are kept, unchanged, in one stamped backup directory outside network-scripts.
    assert ls(host, SCRIPTS) == []
    stamps = ls(host, BACKUPS)
    assert len(stamps) == 1
    backup = "%s/%s" % (BACKUPS, stamps[0])
    assert ls(host, backup) == ["ifcfg-breth1", "ifcfg-eth0", "ifcfg-eth1", "manifest.json"]
    assert {name: host.read_file("%s/%s" % (backup, name)) for name in host.el8["files"]} == host.el8["files"]
    # Equivalent keyfiles, root 0600, as NetworkManager reads them.
    assert ls(host, CONNS) == ["System breth1.nmconnection", "System eth0.nmconnection", "System eth1.nmconnection"]
    for name in ls(host, CONNS):
        assert host.run(["stat", "-c", "%a %U %G", "%s/%s" % (CONNS, name)]).stdout.strip() == "600 root root"
    fields = "connection.type,connection.master,connection.slave-type,ipv4.method,ipv4.addresses,ipv4.never-default,bridge.stp"
    assert nm_profile(host, "System breth1", fields) == {
        "connection.type": "bridge",
        "connection.master": "",
        "connection.slave-type": "",
        "ipv4.method": "manual",
        "ipv4.addresses": address,
        "ipv4.never-default": "yes",
        "bridge.stp": "no",
    }
    port = nm_profile(host, "System eth1", "connection.master,connection.slave-type,802-3-ethernet.mac-address")
    assert (port["connection.master"], port["connection.slave-type"]) == ("breth1", "bridge")
    assert port["802-3-ethernet.mac-address"] == mac.upper()
    assert nm_profile(host, "System eth0", "ipv4.addresses")["ipv4.addresses"] == eth0[0]
    guest = host.add_guest(port="vnet0", bridge="breth1")
    assert guest.dhcp(timeout=20), "the guest got no lease through breth1"

    # The second run has nothing left to migrate.
    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra(host))
    assert again.rc == 0, again.output
    assert again.stats[host.name]["changed"] == 0
    assert ls(host, BACKUPS) == stamps
    check_again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra(host), check=True, diff=True)
    assert check_again.rc == 0 and check_again.stats[host.name]["changed"] == 0

    # The doctor finds no ifcfg file left (the leapp inhibitor) and no profile that will not come up at boot.
    doctor = ansible.playbook(DOCTOR, hosts=[host])
    assert doctor.rc == 0, doctor.output
    added = task_results(doctor, host, "Check for the common failures")
    assert [p for p in added[0]["ansible_facts"]["doctor_problems"] if p["check"].startswith("nm_")] == []

    # The reboot proof: NetworkManager stops, the bridge goes, eth1 is flushed, /run is cleared, and NetworkManager
    # starts again from the keyfiles alone.
    host.stop_networkmanager()
    host.run(["ip", "link", "del", "breth1"])
    host.run(["ip", "addr", "flush", "dev", "eth1"])
    host.run(["rm", "-rf", "/run/NetworkManager"])
    assert "breth1" not in links(host) and ipv4(host, "eth1") == []
    host.start_networkmanager()
    kvmb_nm.wait_device_state(host, "breth1", timeout=90)
    kvmb_nm.wait_device_state(host, "eth1", timeout=90)
    assert_bridged(host, address, mac)
    host.run(["ip", "link", "set", "vnet0", "master", "breth1"])  # what libvirt does when the guest starts after the boot
    assert guest.dhcp(timeout=20), "after the restart the guest got no lease through breth1"
    assert ansible.module(host, "ansible.builtin.ping")["ping"] == "pong"


def test_a_profile_it_cannot_convert_fails_before_anything_changes(el8_host, ansible):
    host = el8_host
    host.write_file(SCRIPTS + "/ifcfg-bond0", "DEVICE=bond0\nTYPE=Bond\nBONDING_OPTS=mode=1\nONBOOT=yes\n")
    before = {name: host.read_file("%s/%s" % (SCRIPTS, name)) for name in ls(host, SCRIPTS)}
    result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra(host))
    assert result.rc != 0
    message = "\n".join(r["result"].get("msg", "") for r in result.results if r["host"] == host.name and r["status"] == "failed")
    assert "The migration off ifcfg cannot convert every profile, so it changed nothing" in message
    assert "ifcfg-bond0 is of TYPE=Bond" in message
    assert {name: host.read_file("%s/%s" % (SCRIPTS, name)) for name in ls(host, SCRIPTS)} == before
    assert ls(host, CONNS) == [] and ls(host, BACKUPS) is None
    assert not nm_running(host)
    assert ipv4(host, "breth1") == [host.el8["address"]]

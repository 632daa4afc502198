"""kvmhost.bridging.ifcfg_info on a lab host: its own /etc/sysconfig/network-scripts, read in one task."""

from __future__ import annotations

import json

from test_ifcfg import SCRIPTS, ls, sourced


def play(host, ansible, tasks):
    result = ansible.playbook(json.dumps([{"hosts": host.name, "gather_facts": False, "tasks": tasks}], indent=1) + "\n")
    return {r["task"]: r for r in result.results if r["host"] == host.name}


def test_reads_the_files_ifcfg_writes_in_one_task_and_changes_nothing(host, ansible):
    before = ls(host)
    written = {"device": "eth1", "bridge": "breth1", "bootproto": "none", "settings": {"ZONE": "a 'quoted' $zone"}}
    records = play(host, ansible, [
        {"name": "write", "kvmhost.bridging.ifcfg": written},
        {"name": "read", "kvmhost.bridging.ifcfg_info": {"devices": ["eth0", "eth1", "breth1"]}},
        {"name": "read in check mode", "kvmhost.bridging.ifcfg_info": {"devices": ["eth1"]}, "check_mode": True},
    ])  # fmt: skip
    assert records["write"]["result"]["changed"] is True
    read = records["read"]
    assert read["status"] == "ok" and read["result"]["changed"] is False
    files = read["result"]["ifcfg"]
    # The lab host's own files: eth0 as the lab wrote it, eth1 as the module just rewrote it, no breth1.
    assert files["eth0"]["exists"] is True and files["eth0"]["variables"]["DEVICE"] == "eth0"
    assert files["eth1"]["variables"] == records["write"]["result"]["variables"]
    assert files["eth1"]["variables"]["ZONE"] == "a 'quoted' $zone" == sourced(host, SCRIPTS + "/ifcfg-eth1", "ZONE")[0]
    assert files["breth1"] == {"path": SCRIPTS + "/ifcfg-breth1", "exists": False, "variables": {}}
    assert records["read in check mode"]["result"]["ifcfg"]["eth1"] == files["eth1"]
    assert ls(host) == before  # ifcfg-eth1 was there already; nothing else appeared


def test_a_bad_device_name_fails_the_task_naming_it(host, ansible):
    records = play(host, ansible, [{"name": "read", "kvmhost.bridging.ifcfg_info": {"devices": ["eth0", "../../shadow"]},
                                    "ignore_errors": True}])  # fmt: skip
    assert records["read"]["status"] == "failed"
    assert "devices '../../shadow' is not a valid interface name" in records["read"]["result"]["msg"]

"""kvmhost.bridging.ifcfg on lab hosts, with the default config_dir (each host's own /etc/sysconfig)."""

from __future__ import annotations

import base64
import json

SCRIPTS = "/etc/sysconfig/network-scripts"
MODULE = "kvmhost.bridging.ifcfg"


def ls(host):
    return sorted(host.run(["ls", "-A", SCRIPTS]).stdout.split())


def mode(host, path):
    return host.run(["stat", "-c", "%a", path]).stdout.strip()


def sourced(host, path, *keys):
    """Values of ``keys`` after sourcing ``path`` with bash the way initscripts does, inside the host.

    Each value travels as base64, so that no text-mode pipe can alter a byte (a CR, say).
    """
    script = 'set -a; . "$1"; shift; for k in "$@"; do printf "%s" "${!k}" | base64 -w0; echo; done'
    out = host.run(["env", "-i", "bash", "-c", script, "_", path, *keys]).stdout
    return [base64.b64decode(line).decode("utf-8") for line in out.splitlines()]


def run_expecting_failure(host, ansible, args):
    """Run the module once; return (status, result) from the recorded task.

    The status comes from the callback (ok/failed), since the result dict of
    ansible-core 2.19 does not always carry ``failed``.
    """
    play = [{"hosts": host.name, "gather_facts": False, "tasks": [{"name": "under test", MODULE: args, "ignore_errors": True}]}]
    result = ansible.playbook(json.dumps(play, indent=1) + "\n")
    records = [r for r in result.results if r["host"] == host.name and r["task"] == "under test"]
    assert records, result.output
    return records[-1].get("status"), records[-1]["result"]


def eth1_mac(host):
    return host.run(["cat", "/sys/class/net/eth1/address"]).stdout.strip()


BRIDGE = {"device": "breth1", "type": "bridge", "bootproto": "dhcp", "onboot": True, "stp": False, "delay": 0}
BRIDGE_TEXT = "DEVICE=breth1\nTYPE=Bridge\nBOOTPROTO=dhcp\nONBOOT=yes\nSTP=no\nDELAY=0\n"


def test_bridge_check_diff_create_idempotent(host, ansible):
    path = SCRIPTS + "/ifcfg-breth1"
    before = ls(host)

    check = ansible.module(host, MODULE, BRIDGE, check=True, diff=True)
    assert not check.get("failed"), check
    assert check["changed"] is True
    assert check["changed_keys"] == ["DEVICE", "TYPE", "BOOTPROTO", "ONBOOT", "STP", "DELAY"]
    assert check["diff"]["before"] == ""
    assert check["diff"]["after"] == BRIDGE_TEXT
    assert host.read_file(path) is None  # check mode touched nothing
    assert ls(host) == before

    done = ansible.module(host, MODULE, BRIDGE, diff=True)
    assert done["changed"] is True
    assert done["path"] == path
    assert host.read_file(path) == BRIDGE_TEXT
    assert mode(host, path) == "644"
    assert ls(host) == sorted([*before, "ifcfg-breth1"])  # no temp file left behind
    assert sourced(host, path, "DEVICE", "TYPE", "BOOTPROTO", "ONBOOT", "STP", "DELAY") == ["breth1", "Bridge", "dhcp", "yes", "no", "0"]

    again = ansible.module(host, MODULE, BRIDGE, diff=True)
    assert again["changed"] is False
    assert again["changed_keys"] == []
    assert again["diff"]["before"] == again["diff"]["after"] == BRIDGE_TEXT
    assert host.read_file(path) == BRIDGE_TEXT


def test_nic_becomes_a_port_and_keeps_its_other_lines(host, ansible):
    path = SCRIPTS + "/ifcfg-eth1"
    mac = eth1_mac(host)
    original = host.read_file(path)
    assert original == "DEVICE=eth1\nTYPE=Ethernet\nHWADDR=%s\nBOOTPROTO=none\nONBOOT=yes\n" % mac
    host.write_file(path, "# the LAN NIC\n" + original + "UUID=5fcfd6d7-1e63-3332-8826-a7eda103792d\n")
    args = {"device": "eth1", "bridge": "breth1", "bootproto": "none", "hwaddr": mac, "onboot": True, "nm_controlled": False}

    check = ansible.module(host, MODULE, args, check=True, diff=True)
    assert check["changed"] is True
    assert check["changed_keys"] == ["BRIDGE", "NM_CONTROLLED"]
    assert host.read_file(path).startswith("# the LAN NIC\n")
    assert "BRIDGE" not in host.read_file(path)

    done = ansible.module(host, MODULE, args, diff=True)
    assert done["changed_keys"] == ["BRIDGE", "NM_CONTROLLED"]
    assert {"key": "BRIDGE", "action": "add", "before": None, "after": "breth1"} in done["changes"]
    expected = (
        "# the LAN NIC\nDEVICE=eth1\nTYPE=Ethernet\nHWADDR=%s\nBOOTPROTO=none\nONBOOT=yes\n"
        "UUID=5fcfd6d7-1e63-3332-8826-a7eda103792d\nBRIDGE=breth1\nNM_CONTROLLED=no\n" % mac
    )
    assert host.read_file(path) == expected
    assert done["diff"]["before"] != done["diff"]["after"] == expected
    assert sourced(host, path, "BRIDGE", "NM_CONTROLLED", "HWADDR") == ["breth1", "no", mac]

    assert ansible.module(host, MODULE, args)["changed"] is False
    assert host.read_file(path) == expected


def test_hostile_values_over_ssh(host, ansible):
    marker = "/tmp/kvmb-ifcfg-pwned"
    host.run(["rm", "-f", marker])
    settings = {
        "X_SUBST": "$(touch %s)" % marker,
        "X_TICKS": "`touch %s`" % marker,
        "X_SEMI": "x; touch %s" % marker,
        "X_NL": "x\ntouch %s" % marker,
        "X_QUOTES": 'it\'s "quoted" \\ back',
        "X_TILDE": "~root",
        "X_GLOB": "/etc/*",
        "X_UTF8": "caf\u00e9 \u4e2d",
        "X_CTRL": "\t\x1b[1m\r",
    }
    args = {"device": "vnet7", "type": "tap", "settings": settings}
    result = ansible.module(host, MODULE, args)
    assert result["changed"] is True
    path = SCRIPTS + "/ifcfg-vnet7"
    assert sourced(host, path, *settings) == list(settings.values())
    assert host.run(["test", "-e", marker], check=False).returncode == 1  # nothing was executed
    assert result["variables"] == dict({"DEVICE": "vnet7", "TYPE": "Tap"}, **settings)
    assert ansible.module(host, MODULE, args)["changed"] is False


def test_backup_and_absent(host, ansible):
    path = SCRIPTS + "/ifcfg-eth1"
    original = host.read_file(path)

    changed = ansible.module(host, MODULE, {"device": "eth1", "settings": {"MTU": 9000}, "backup": True})
    backup = changed["backup_file"]
    assert backup.startswith(SCRIPTS + "/ifcfg-eth1.") and backup.endswith("~")
    assert host.read_file(backup) == original
    assert host.read_file(path) == original + "MTU=9000\n"

    check = ansible.module(host, MODULE, {"device": "eth1", "state": "absent"}, check=True, diff=True)
    assert check["changed"] is True
    assert check["diff"]["after"] == ""
    assert host.read_file(path) == original + "MTU=9000\n"

    removed = ansible.module(host, MODULE, {"device": "eth1", "state": "absent", "backup": True}, diff=True)
    assert removed["changed"] is True
    assert host.read_file(path) is None
    assert host.read_file(removed["backup_file"]) == original + "MTU=9000\n"
    assert removed["diff"]["before"] == original + "MTU=9000\n"

    gone = ansible.module(host, MODULE, {"device": "eth1", "state": "absent"})
    assert gone["changed"] is False
    assert host.read_file(path) is None


def test_purge_and_removal_of_keys(host, ansible):
    path = SCRIPTS + "/ifcfg-eth1"
    host.write_file(path, "# keep me\nDEVICE=eth1\nTYPE=Ethernet\nBOOTPROTO=dhcp\nIPADDR=198.18.200.10\nPREFIX=24\nMTU=1500\n")
    removal = ansible.module(host, MODULE, {"device": "eth1", "settings": {"MTU": None}})
    assert removal["changed_keys"] == ["MTU"]
    assert "MTU" not in host.read_file(path)

    args = {"device": "eth1", "bridge": "breth1", "bootproto": "none", "onboot": True, "purge": True}
    purged = ansible.module(host, MODULE, args)
    assert sorted(purged["changed_keys"]) == ["BOOTPROTO", "BRIDGE", "IPADDR", "ONBOOT", "PREFIX", "TYPE"]
    assert host.read_file(path) == "# keep me\nDEVICE=eth1\nBOOTPROTO=none\nBRIDGE=breth1\nONBOOT=yes\n"
    assert ansible.module(host, MODULE, args)["changed"] is False


def test_errors_leave_files_alone(host, ansible):
    # ifcfg-x is a directory: without the check, device x/../../kvmbX would write /etc/sysconfig/kvmbX.
    host.run(["mkdir", SCRIPTS + "/ifcfg-x"])
    sysconfig = host.run(["ls", "-A", "/etc/sysconfig"]).stdout
    before = {name: host.read_file(SCRIPTS + "/" + name) for name in ls(host)}
    cases = [
        ({"device": "x/../../kvmbX"}, "not a valid interface name"),
        ({"device": "eth1", "bridge": "eth1"}, "names the device itself"),
        ({"device": "eth1", "bridge": "breth1", "addresses": ["198.18.200.10/24"]}, "ignores IP settings on a bridge port"),
        ({"device": "eth1", "hwaddr": "01:00:5e:00:00:01"}, "multicast"),
        ({"device": "eth1", "settings": {"LD_PRELOAD": "/tmp/x.so"}}, "shell or loader variable"),
        ({"device": "breth1", "bootproto": "static"}, "needs an address"),
    ]
    for args, message in cases:
        status, result = run_expecting_failure(host, ansible, dict(args, onboot=True))
        assert status == "failed", (args, result)
        assert message in result["msg"], result["msg"]
        assert result["changed"] is False
    assert {name: host.read_file(SCRIPTS + "/" + name) for name in ls(host)} == before
    assert host.run(["ls", "-A", "/etc/sysconfig"]).stdout == sysconfig
    assert host.read_file("/etc/sysconfig/kvmbX") is None


def test_parallel_tasks_on_one_host_lose_no_update(host, ansible):
    """Many async tasks rewriting one file at the same time: every key arrives."""
    count = 8
    play = [
        {
            "hosts": host.name,
            "gather_facts": False,
            "tasks": [
                {
                    "name": "start writers",
                    MODULE: {"device": "eth1", "settings": "{{ {'KVMB_%d' % item: item | string} }}"},
                    "loop": list(range(count)),
                    "async": 60,
                    "poll": 0,
                    "register": "jobs",
                },
                {
                    "name": "wait for writers",
                    "ansible.builtin.async_status": {"jid": "{{ item.ansible_job_id }}"},
                    "loop": "{{ jobs.results }}",
                    "register": "done",
                    "until": "done.finished",
                    "retries": 60,
                    "delay": 0.5,
                },
            ],
        }
    ]
    result = ansible.playbook(json.dumps(play, indent=1) + "\n")
    assert result.rc == 0, result.output
    text = host.read_file(SCRIPTS + "/ifcfg-eth1")
    got = sourced(host, SCRIPTS + "/ifcfg-eth1", *("KVMB_%d" % i for i in range(count)))
    assert got == [str(i) for i in range(count)], text
    assert not [name for name in ls(host) if name.startswith(".")]  # no temp files left

"""kvmhost.bridging.tap against real lab hosts; every check reads the kernel back with ip -d -j."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time

import pytest

MODULE = "kvmhost.bridging.tap"

# A stand-in for qemu: attaches to a tap and holds it; its command line carries -name like qemu's.
HOLDER = r"""
import fcntl, os, struct, sys, time
request = int(sys.argv[3])
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, request, struct.pack("16sH22x", sys.argv[1].encode(), int(sys.argv[2])))
print("ready", flush=True)
time.sleep(600)
"""
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE = 0x0002, 0x1000, 0x4000, 0x0100
TUNSETIFF = (0x80000000 if platform.machine().startswith(("ppc", "mips", "sparc")) else 0x40000000) | (4 << 16) | (ord("T") << 8) | 202


class Holder:
    """A process in ``host`` that holds tap ``name`` open, stopped by PID."""

    def __init__(self, host, name, guest="web01", vnet_hdr=True, multi_queue=False):
        flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0) | (IFF_MULTI_QUEUE if multi_queue else 0)
        argv = [sys.executable, "-c", HOLDER, name, str(flags), str(TUNSETIFF), "-name", "guest=%s,debug-threads=on" % guest]
        self.proc = host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise AssertionError("holder did not attach to %s: %s" % (name, self.proc.stderr.read()))
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def holders():
    started = []
    yield lambda *args, **kwargs: started.append(Holder(*args, **kwargs)) or started[-1]
    for holder in started:
        holder.stop()


def module(ansible, host, args, check=False, diff=False):
    """Run the tap module once; ``failed`` comes from the task status the recording callback saw.

    ansible-core 2.19 no longer leaves ``failed`` in the result dict that
    callbacks get, so ``ansible.module()`` cannot tell a failure from a success.
    """
    task = {"name": "under test", MODULE: args, "check_mode": check, "diff": diff}
    played = ansible.playbook(json.dumps([{"hosts": host.name, "gather_facts": False, "tasks": [task]}]) + "\n")
    records = [r for r in played.results if r["host"] == host.name and r["task"] == "under test"]
    assert records, played.output
    return dict(records[-1]["result"], failed=records[-1]["status"] == "failed")


def link(host, name):
    """The link as the kernel reports it (ip -d -j link show), or None."""
    proc = host.run(["ip", "-d", "-j", "link", "show", "dev", name], check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def tun(host, name):
    return link(host, name)["linkinfo"]["info_data"]


def ports(host, bridge):
    return {entry["ifname"] for entry in json.loads(host.run(["ip", "-j", "link", "show", "master", bridge]).stdout)}


def all_taps(host):
    links = json.loads(host.run(["ip", "-d", "-j", "link", "show", "type", "tun"]).stdout)
    return {entry["ifname"] for entry in links}


def make_bridge(host, name="br0"):
    host.run(["ip", "link", "add", name, "type", "bridge", "forward_delay", "0"])
    host.run(["ip", "link", "set", name, "up"])


def ok(result):
    assert result["failed"] is False, result.get("msg")
    return result


def test_create_idempotent_diff_and_absent(host, ansible):
    make_bridge(host)
    args = {"name": "vnet0", "bridge": "br0", "owner": "nobody", "vnet_hdr": True, "multi_queue": False, "mac": "52:54:00:AB:CD:EF", "up": True}

    first = ok(module(ansible, host, args, diff=True))
    assert first["changed"] is True
    assert first["actions"] == [
        {
            "action": "create",
            "name": "vnet0",
            "after": {
                "bridge": "br0",
                "owner": 65534,
                "group": None,
                "multi_queue": False,
                "vnet_hdr": True,
                "mac": "52:54:00:ab:cd:ef",
                "mtu": 1500,
                "up": True,
            },
        }
    ]
    assert first["diff"] == {"before": {"taps": {}}, "after": {"taps": {"vnet0": first["actions"][0]["after"]}}}
    kernel = link(host, "vnet0")
    assert kernel["master"] == "br0"
    assert kernel["address"] == "52:54:00:ab:cd:ef"
    assert "UP" in kernel["flags"]
    assert kernel["mtu"] == 1500
    info = kernel["linkinfo"]["info_data"]
    assert (info["type"], info["pi"], info["vnet_hdr"], info["multi_queue"], info["persist"], info["user"]) == ("tap", False, True, False, True, "nobody")
    assert "group" not in info

    again = ok(module(ansible, host, args, diff=True))
    assert again["changed"] is False
    assert again["actions"] == []
    assert again["taps"] == [dict(first["actions"][0]["after"], name="vnet0")]
    assert link(host, "vnet0")["ifindex"] == kernel["ifindex"]

    gone = ok(module(ansible, host, {"name": "vnet0", "state": "absent"}, diff=True))
    assert gone["changed"] is True
    assert [a["action"] for a in gone["actions"]] == ["delete"]
    assert gone["diff"]["after"] == {"taps": {}}
    assert link(host, "vnet0") is None
    assert ok(module(ansible, host, {"name": "vnet0", "state": "absent"}))["changed"] is False


def test_check_mode_leaves_the_kernel_alone(host, ansible):
    make_bridge(host)
    created = ok(module(ansible, host, {"name": "vnet0", "bridge": "br0"}, check=True, diff=True))
    assert created["changed"] is True
    assert created["actions"][0]["action"] == "create"
    assert created["diff"]["after"]["taps"]["vnet0"]["bridge"] == "br0"
    assert link(host, "vnet0") is None

    ok(module(ansible, host, {"name": "vnet0", "bridge": "br0"}))
    before = link(host, "vnet0")
    for args in (
        {"name": "vnet0", "mtu": 9000, "bridge": "", "up": False, "mac": "52:54:00:00:00:09"},
        {"name": "vnet0", "multi_queue": True},
        {"name": "vnet0", "vnet_hdr": False, "owner": "nobody"},
        {"name": "vnet0", "state": "absent"},
    ):
        result = ok(module(ansible, host, args, check=True))
        assert result["changed"] is True, args
        after = link(host, "vnet0")
        assert after is not None
        for key in ("ifindex", "mtu", "address", "flags", "master", "linkinfo"):
            if key == "linkinfo":
                assert after[key]["info_data"] == before[key]["info_data"]
            else:
                assert after.get(key) == before.get(key), key


def test_netlink_properties_change_in_place(host, ansible):
    make_bridge(host, "br0")
    make_bridge(host, "br1")
    ok(module(ansible, host, {"name": "vnet0", "bridge": "br0"}))
    index = link(host, "vnet0")["ifindex"]
    result = ok(module(ansible, host, {"name": "vnet0", "bridge": "br1", "mtu": 9000, "mac": "52:54:00:00:00:42", "up": False}))
    assert result["actions"][0]["action"] == "update"
    assert set(result["actions"][0]["changes"]) == {"bridge", "mtu", "mac", "up"}
    kernel = link(host, "vnet0")
    assert (kernel["ifindex"], kernel["master"], kernel["mtu"], kernel["address"]) == (index, "br1", 9000, "52:54:00:00:00:42")
    assert "UP" not in kernel["flags"]
    off = ok(module(ansible, host, {"name": "vnet0", "bridge": ""}))
    assert off["actions"][0]["changes"] == {"bridge": {"before": "br1", "after": None}}
    assert "master" not in link(host, "vnet0")
    assert ok(module(ansible, host, {"name": "vnet0", "bridge": ""}))["changed"] is False


def test_owner_group_and_vnet_hdr_change_by_attaching_keeping_the_port(host, ansible):
    make_bridge(host)
    ok(module(ansible, host, {"name": "vnet0", "bridge": "br0", "mac": "52:54:00:00:00:01"}))
    index = link(host, "vnet0")["ifindex"]
    result = ok(module(ansible, host, {"name": "vnet0", "owner": "0", "group": "nogroup", "vnet_hdr": False}))
    assert result["actions"][0]["action"] == "update"
    kernel = link(host, "vnet0")
    assert kernel["ifindex"] == index
    assert kernel["master"] == "br0"
    info = kernel["linkinfo"]["info_data"]
    assert (info["vnet_hdr"], info["user"], info["group"], info["persist"]) == (False, "root", "nogroup", True)


def test_multi_queue_change_recreates_and_keeps_the_rest(host, ansible):
    make_bridge(host)
    ok(module(ansible, host, {"name": "vnet0", "bridge": "br0", "mac": "52:54:00:00:00:01", "mtu": 1400, "owner": "nobody"}))
    index = link(host, "vnet0")["ifindex"]
    result = ok(module(ansible, host, {"name": "vnet0", "multi_queue": True}))
    assert result["actions"][0]["action"] == "recreate"
    kernel = link(host, "vnet0")
    assert kernel["ifindex"] != index
    assert (kernel["master"], kernel["address"], kernel["mtu"]) == ("br0", "52:54:00:00:00:01", 1400)
    assert "UP" in kernel["flags"]
    info = kernel["linkinfo"]["info_data"]
    assert (info["multi_queue"], info["user"], info["vnet_hdr"], info["persist"]) == (True, "nobody", True, True)
    assert ok(module(ansible, host, {"name": "vnet0", "multi_queue": True}))["changed"] is False


def test_held_tap_refuses_offline_changes_and_names_the_process(host, ansible, holders):
    make_bridge(host)
    ok(module(ansible, host, {"name": "vnet0", "bridge": "br0"}))
    before = link(host, "vnet0")
    holder = holders(host, "vnet0", guest="web01")
    for args in ({"name": "vnet0", "multi_queue": True}, {"name": "vnet0", "vnet_hdr": False}, {"name": "vnet0", "owner": "nobody"}):
        for check in (True, False):
            result = module(ansible, host, args, check=check)
            assert result["failed"] is True, args
            assert "cannot change in place" in result["msg"]
            assert "pid %d" % holder.pid in result["msg"]
            assert "of guest web01" in result["msg"]
            assert "Stop that process" in result["msg"]
            assert result["changed"] is False
    after = link(host, "vnet0")
    assert after["ifindex"] == before["ifindex"]
    assert after["linkinfo"]["info_data"] == before["linkinfo"]["info_data"]
    # what netlink changes in place still works on a running guest's tap
    assert ok(module(ansible, host, {"name": "vnet0", "mtu": 1400}))["changed"] is True
    assert link(host, "vnet0")["mtu"] == 1400
    # and absent removes it even while held
    gone = ok(module(ansible, host, {"name": "vnet0", "state": "absent"}))
    assert gone["actions"][0]["held"] is True
    assert link(host, "vnet0") is None


def test_a_thousand_taps_on_one_bridge_in_one_task(host, ansible):
    make_bridge(host)
    # The expression of the module's EXAMPLES, for 1000 taps.
    play = r"""
- hosts: HOST
  gather_facts: false
  tasks:
    - name: taps
      kvmhost.bridging.tap:
        taps: "{{ range(1000) | map('regex_replace', '^(.*)$', '{\"name\": \"vnet\\1\"}') | map('from_json') | list }}"
        bridge: br0
        owner: nobody
        state: "{{ tap_state }}"
""".replace("HOST", host.name)
    names = {"vnet%d" % i for i in range(1000)}
    timings = {}

    def run(state):
        started = time.monotonic()
        played = ansible.playbook(play, hosts=[host], extra_vars={"tap_state": state})
        timings.setdefault(state, []).append(round(time.monotonic() - started, 2))
        assert played.rc == 0, played.output
        return played.for_host(host, "taps")[0]

    created = run("present")
    assert created["changed"] is True
    assert len(created["actions"]) == 1000
    assert ports(host, "br0") == names
    assert tun(host, "vnet999")["user"] == "nobody"
    assert all(tap["mac"] for tap in created["taps"])
    assert run("present")["changed"] is False
    removed = run("absent")
    assert removed["changed"] is True
    assert len(removed["actions"]) == 1000
    assert all_taps(host) == set()
    assert run("absent")["changed"] is False
    print("\n1000 taps, whole ansible-playbook runs (s): %s" % json.dumps(timings))


def test_bulk_mixes_states_and_per_tap_settings(host, ansible):
    make_bridge(host, "br0")
    make_bridge(host, "br1")
    ok(module(ansible, host, {"taps": [{"name": "vnet0"}, {"name": "vnet1"}], "bridge": "br0"}))
    result = ok(
        module(
            ansible,
            host,
            {
                "taps": [
                    {"name": "vnet0", "state": "absent"},
                    {"name": "vnet1", "bridge": "br1", "mac": "52:54:00:00:00:11"},
                    {"name": "vnet2", "mtu": 9000},
                ],
                "bridge": "br0",
            },
        )
    )
    assert [(a["action"], a["name"]) for a in result["actions"]] == [("delete", "vnet0"), ("update", "vnet1"), ("create", "vnet2")]
    assert link(host, "vnet0") is None
    assert (link(host, "vnet1")["master"], link(host, "vnet1")["address"]) == ("br1", "52:54:00:00:00:11")
    assert (link(host, "vnet2")["master"], link(host, "vnet2")["mtu"]) == ("br0", 9000)


BAD_INPUTS = [
    ({"name": "vnet0", "bridge": "br9"}, "bridge br9 does not exist"),
    ({"name": "vnet0", "bridge": "eth1"}, "eth1 is a veth device, not a bridge"),
    ({"name": "a-very-long-tap-name"}, "tap name 'a-very-long-tap-name' is not a valid interface name: it is longer than 15 bytes"),
    ({"name": "vnet/0"}, "tap name 'vnet/0' is not a valid interface name: it contains '/'"),
    ({"name": "vnet%d"}, "tap name 'vnet%d' is not a valid interface name: it contains '%'"),
    ({"name": "vnet0", "bridge": "br 0"}, "bridge name 'br 0' is not a valid interface name: it contains white space"),
    ({"name": "vnet0", "mac": "11:22:33:44:55:66"}, "cannot assign requested address"),
    ({"name": "vnet0", "mac": "52:54:00:zz:00:01"}, "is not a MAC address"),
    ({"name": "vnet0", "owner": "no-such-user-kvmb"}, "no such user"),
    ({"name": "vnet0", "group": "no-such-group-kvmb"}, "no such group"),
    ({"name": "vnet0", "mtu": 70000}, "mtu 70000 is out of range"),
    ({"name": "eth1"}, "eth1 exists and is a veth device, not a tap"),
    ({"name": "eth1", "state": "absent"}, "refusing to remove it"),
    ({"name": "br0", "state": "absent"}, "br0 exists and is a bridge device, not a tap"),
    ({"name": "vnet0", "taps": [{"name": "vnet1"}]}, "mutually exclusive"),
    ({"bridge": "br0"}, "one of the following is required"),
    ({"taps": [{"name": "vnet0"}, {"name": "vnet0"}]}, "listed twice"),
    ({"taps": [{"name": "vnet0"}, {"name": "vnet1"}], "mac": "52:54:00:00:00:01"}, "every tap would get the same MAC"),
    ({"name": "vnet0", "state": "gone"}, "value of state must be one of"),
]


def test_every_bad_input_fails_and_changes_nothing(host, ansible):
    make_bridge(host)
    before = sorted(entry["ifname"] for entry in json.loads(host.run(["ip", "-j", "link", "show"]).stdout))
    for args, message in BAD_INPUTS:
        for check in (False, True):
            result = module(ansible, host, args, check=check)
            assert result["failed"] is True, args
            assert message in result["msg"], (args, result["msg"])
    after = sorted(entry["ifname"] for entry in json.loads(host.run(["ip", "-j", "link", "show"]).stdout))
    assert after == before


def test_multicast_mac_message_in_full(host, ansible):
    result = module(ansible, host, {"name": "vnet0", "mac": "11:22:33:44:55:66"})
    assert result["msg"] == (
        "vnet0: mac 11:22:33:44:55:66 is a multicast address (the lowest bit of the first octet, 0x11, is set); a network card cannot use "
        "it as its own address: the kernel refuses it with 'cannot assign requested address'. Use a unicast address such as "
        "52:54:00:xx:xx:xx (the locally administered range of KVM), e.g. 52:54:00:44:55:66."
    )

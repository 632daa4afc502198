"""bridge_info's libvirt lookup on lab hosts: the domain behind a real tap, and no failure where libvirt is not.

libvirt is its test driver (test:///<node file>, real libvirt code in the
module's process, no daemon). The driver drops target names that start with
"vnet" from a definition (libvirt makes those itself), so the taps here are
vm2tap and vm3tap; what matters is that the running domain's <target dev>
names a tap that exists on the host.
"""

from __future__ import annotations

import json
import os

MODULE = "kvmhost.bridging.bridge_info"
NODE_DIR = "/etc/kvmb-bil"
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"


def domain(name, uuid, interfaces, running=True):
    state = "" if running else "<test:runstate>5</test:runstate>"
    return (
        "<domain type='test' xmlns:test='%s'><name>%s</name><uuid>%s</uuid><memory>524288</memory>"
        "<os><type>hvm</type></os><devices>%s</devices>%s</domain>" % (TEST_NS, name, uuid, interfaces, state)
    )


def nic(mac, bridge, target=None, model=None):
    return "<interface type='bridge'><mac address='%s'/><source bridge='%s'/>%s%s</interface>" % (
        mac,
        bridge,
        "<target dev='%s'/>" % target if target else "",
        "<model type='%s'/>" % model if model else "",
    )


def write_node(host, *domains):
    path = os.path.join(NODE_DIR, "node.xml")
    host.write_file(path, "<node>\n%s\n</node>\n" % "\n".join(domains))
    return "test://" + path


def add_tap(host, name, bridge=None):
    host.run(["ip", "tuntap", "add", "dev", name, "mode", "tap"])
    if bridge:
        host.run(["ip", "link", "set", name, "master", bridge])
    host.run(["ip", "link", "set", name, "up"])


def info(ansible, host, args, **task_vars):
    task = {"name": "under test", MODULE: args}
    if task_vars:
        task["vars"] = task_vars
    played = ansible.playbook(json.dumps([{"hosts": host.name, "gather_facts": False, "tasks": [task]}]) + "\n")
    records = [r for r in played.results if r["host"] == host.name and r["task"] == "under test"]
    assert records, played.output
    return records[-1]["result"]


def ports(result):
    taps = {p["name"]: p for b in result["bridges"] for p in b["ports"]}
    taps.update({t["name"]: t for t in result["unbridged_taps"]})
    return taps


def test_names_the_domain_behind_each_tap(host, ansible):
    host.run(["ip", "link", "add", "br0", "type", "bridge"])
    host.run(["ip", "link", "set", "br0", "up"])
    add_tap(host, "vm2tap", "br0")
    add_tap(host, "vm3tap")
    add_tap(host, "vnet9", "br0")  # a tap no domain has
    uri = write_node(
        host,
        domain("web01", "3deda32b-04b6-47d0-b36a-b09037689f42", nic("52:54:00:aa:00:01", "br0", "vm2tap", "virtio")),
        domain("db01", "5cd044d1-9846-4d92-8bb2-850626374163", nic("52:54:00:bb:00:01", "brgone", "vm3tap", "e1000")),
        domain("off01", "9a1c9c5e-2f7b-4c47-9b4e-1d0b7c0e0c01", nic("52:54:00:cc:00:01", "eth1"), running=False),
    )

    result = info(ansible, host, {"libvirt_uri": uri})
    assert not result.get("failed"), result
    assert result["changed"] is False and not result.get("warnings")
    taps = ports(result)
    assert (taps["vm2tap"]["domain"], taps["vm2tap"]["domain_mac"], taps["vm2tap"]["domain_model"]) == ("web01", "52:54:00:aa:00:01", "virtio")
    assert (taps["vm3tap"]["domain"], taps["vm3tap"]["domain_mac"], taps["vm3tap"]["domain_model"]) == ("db01", "52:54:00:bb:00:01", "e1000")
    assert (taps["vnet9"]["domain"], taps["vnet9"]["domain_mac"]) == (None, None)
    assert "vm3tap" in {t["name"] for t in result["unbridged_taps"]}

    libvirt = result["libvirt"]
    assert (libvirt["uri"], libvirt["status"], libvirt["msg"]) == (uri, "ok", "3 domains, 2 running")
    states = {(d["domain"], i["view"], i["bridge"]): i["bridge_state"] for d in libvirt["domains"] for i in d["interfaces"]}
    # the bridge states are the lab host's own links (its namespace), not this machine's
    assert states == {
        ("db01", "live", "brgone"): "missing",
        ("db01", "config", "brgone"): "missing",
        ("off01", "config", "eth1"): "not_a_bridge",
        ("web01", "live", "br0"): "bridge",
        ("web01", "config", "br0"): "bridge",
    }

    report = result["report"]
    assert "  vm2tap: tap, no process holds it, libvirt domain web01 (52:54:00:aa:00:01, virtio), " in report
    assert "  vm3tap: tap, no process holds it, libvirt domain db01 (52:54:00:bb:00:01, e1000), carrier " in report
    assert "  vnet9: tap, no process holds it, disabled" in report
    assert report.endswith("libvirt %s: 3 domains, 2 running\n" % uri)


def test_no_libvirt_is_no_failure(host, ansible):
    host.run(["ip", "link", "add", "br0", "type", "bridge"])
    add_tap(host, "vnet0", "br0")

    # a socket nobody listens on
    uri = "qemu+unix:///system?socket=/etc/kvmb-bil/none.sock"
    result = info(ansible, host, {"libvirt_uri": uri})
    assert not result.get("failed") and not result.get("warnings"), result
    assert ports(result)["vnet0"]["domain"] is None
    assert (result["libvirt"]["status"], result["libvirt"]["domains"]) == ("unreachable", [])
    assert "none.sock" in result["libvirt"]["msg"]
    assert "libvirt %s: not reachable: " % uri in result["report"]
    assert result["report"].rstrip().endswith("; taps are not matched to domains")

    # the default URI: a lab host runs no libvirt daemon
    default = info(ansible, host, {})
    assert not default.get("failed"), default
    assert (default["libvirt"]["uri"], default["libvirt"]["status"]) == ("qemu:///system", "unreachable")

    # libvirt: never does not look
    never = info(ansible, host, {"libvirt": "never", "libvirt_uri": uri})
    assert never["libvirt"] == {"uri": None, "status": "off", "msg": "not looked up (libvirt: never)", "domains": [], "networks": []}
    assert ports(never)["vnet0"]["domain"] is None

    # a Python without libvirt-python (Debian's own python3; bridge_info needs no other library)
    bare = info(ansible, host, {"libvirt_uri": uri}, ansible_python_interpreter="/usr/bin/python3")
    assert not bare.get("failed"), bare
    assert bare["libvirt"]["status"] == "missing" and "python3-libvirt" in bare["libvirt"]["msg"]
    assert [b["name"] for b in bare["bridges"]] == ["br0"]

"""vm_interface on lab hosts over SSH, against libvirt's test driver.

The module runs on the lab host with uri test:///<node file>: real libvirt code
in the module's own process, no daemon. The node file lives in the host's
private /etc, the bridges in the host's network namespace (what the module's
bridge check reads through /sys/class/net).

The test driver keeps its state per connection, so every module run starts
from the node file. A second run is made against a node file written from the
XML that libvirt returned after the first run: if that run changes nothing,
the module is idempotent on libvirt's own view of the result. The test driver
cannot hot plug, so live changes are covered by the unit tests; here, running
domains show the error that says what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import pytest

NODE_DIR = "/etc/kvmb-vmif"
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
MODULE = "kvmhost.bridging.vm_interface"


def parse(text):
    return ET.fromstring(text)  # noqa: S314 (libvirt's own output)


def domain(name, uuid, interfaces="", running=False):
    """A test-driver domain; shut off unless ``running``."""
    state = "" if running else "<test:runstate>5</test:runstate>"
    return (
        "<domain type='test' xmlns:test='%s'><name>%s</name><uuid>%s</uuid><memory>524288</memory>"
        "<os><type>hvm</type></os><devices>%s</devices>%s</domain>" % (TEST_NS, name, uuid, interfaces, state)
    )


def bridge_iface(mac, bridge, model=None):
    model_xml = "<model type='%s'/>" % model if model else ""
    return "<interface type='bridge'><mac address='%s'/><source bridge='%s'/>%s</interface>" % (mac, bridge, model_xml)


def write_node(host, *domains, name="node.xml"):
    path = os.path.join(NODE_DIR, name)
    host.write_file(path, "<node>\n%s\n</node>\n" % "\n".join(domains))
    return "test://" + path


def shut_off(domain_xml):
    """A <domain> as libvirt returned it, made a shut-off domain of a node file again."""
    root = parse(domain_xml)
    root.attrib.pop("id", None)
    ET.SubElement(root, "{%s}runstate" % TEST_NS).text = "5"
    return ET.tostring(root, encoding="unicode")


def add_bridge(host, name):
    host.run(["ip", "link", "add", name, "type", "bridge"])
    host.run(["ip", "link", "set", name, "up"])


def interfaces(domain_xml):
    out = []
    for elem in parse(domain_xml).findall("./devices/interface"):
        model = elem.find("model")
        out.append((elem.get("type"), elem.find("mac").get("address"), elem.find("source").get("bridge"), model.get("type") if model is not None else None))
    return out


def assert_valid(xml_text):
    """libvirt's schema accepts the domain XML (virt-xml-validate, libvirt-clients)."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as handle:
        handle.write(xml_text)
    try:
        proc = subprocess.run(["virt-xml-validate", handle.name, "domain"], capture_output=True, text=True, check=False)
    finally:
        os.unlink(handle.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def config_after(result):
    (diff,) = [d for d in result["diff"] if d["after_header"].endswith("(config)")]
    return diff["after"]


def derived(domain_name, bridge):
    digest = hashlib.sha256(("%s\n%s" % (domain_name, bridge)).encode()).hexdigest()
    return "52:54:00:%s:%s:%s" % (digest[0:2], digest[2:4], digest[4:6])


UUID1 = "3deda32b-04b6-47d0-b36a-b09037689f42"
UUID2 = "5cd044d1-9846-4d92-8bb2-850626374163"


def test_adds_the_interface_of_the_guide_then_changes_nothing(host, ansible):
    add_bridge(host, "breth0")
    uri = write_node(host, domain("web01", UUID1))
    args = {"domain": "web01", "bridge": "breth0", "mac": "52:54:00:12:34:56", "model": "virtio", "uri": uri}

    predicted = ansible.module(host, MODULE, args, check=True, diff=True)
    first = ansible.module(host, MODULE, args, diff=True)
    assert not first.get("failed"), first
    assert first["changed"] is True
    after = config_after(first)
    assert interfaces(after) == [("bridge", "52:54:00:12:34:56", "breth0", "virtio")]
    assert_valid(after)
    assert {k: first["interface"][k] for k in ("mac", "bridge", "model", "type")} == {
        "mac": "52:54:00:12:34:56",
        "bridge": "breth0",
        "model": "virtio",
        "type": "bridge",
    }
    # Check mode predicted this run: same changes, same interface in the XML.
    assert predicted["changed"] is True
    assert [(c["view"], c["action"], c["after"]["mac"]) for c in predicted["changes"]] == [("config", "add", "52:54:00:12:34:56")]
    assert interfaces(config_after(predicted)) == interfaces(after)

    # Second run, on the domain as libvirt returned it after the first.
    uri2 = write_node(host, shut_off(after), name="after.xml")
    second = ansible.module(host, MODULE, dict(args, uri=uri2), diff=True)
    assert not second.get("failed"), second
    assert second["changed"] is False and second["changes"] == [] and second["diff"] == []
    assert second["interface"]["mac"] == "52:54:00:12:34:56"


def test_diff_mode_shows_the_domain_xml_before_and_after(host, ansible):
    add_bridge(host, "breth0")
    uri = write_node(host, domain("web01", UUID1))
    play = """
- hosts: %s
  gather_facts: false
  tasks:
    - name: attach
      kvmhost.bridging.vm_interface:
        domain: web01
        bridge: breth0
        mac: "52:54:00:12:34:56"
        uri: "%s"
""" % (host.name, uri)
    result = ansible.playbook(play, hosts=[host], diff=True)
    assert result.rc == 0, result.output
    assert "web01 (config)" in result.output
    assert '+    <interface type="bridge">' in result.output
    assert '+      <source bridge="breth0" />' in result.output


def test_without_mac_the_mac_is_derived_and_a_model_change_updates_it(host, ansible):
    add_bridge(host, "breth0")
    uri = write_node(host, domain("web01", UUID1))
    first = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "uri": uri}, diff=True)
    assert not first.get("failed"), first
    mac = derived("web01", "breth0")
    after = config_after(first)
    assert interfaces(after) == [("bridge", mac, "breth0", "virtio")]
    assert_valid(after)

    uri2 = write_node(host, shut_off(after), name="after.xml")
    same = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "uri": uri2})
    assert same["changed"] is False, same
    changed = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "model": "e1000e", "uri": uri2}, diff=True)
    assert [(c["action"], c["changed"]) for c in changed["changes"]] == [("update", ["model"])]
    assert interfaces(config_after(changed)) == [("bridge", mac, "breth0", "e1000e")]
    assert_valid(config_after(changed))


def test_moves_a_network_interface_to_the_bridge_and_removes_by_model(host, ansible):
    add_bridge(host, "breth0")
    add_bridge(host, "brold")
    nics = (
        bridge_iface("52:54:00:aa:00:01", "brold", "virtio")
        + bridge_iface("52:54:00:aa:00:02", "brold", "e1000")
        + "<interface type='network'><mac address='52:54:00:aa:00:03'/><source network='default'/></interface>"
    )
    uri = write_node(host, domain("web01", UUID1, nics))
    first = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "mac": "52:54:00:aa:00:03", "uri": uri}, diff=True)
    assert not first.get("failed"), first
    assert [c["changed"] for c in first["changes"]] == [["type", "bridge"]]
    after = config_after(first)
    assert interfaces(after) == [
        ("bridge", "52:54:00:aa:00:01", "brold", "virtio"),
        ("bridge", "52:54:00:aa:00:02", "brold", "e1000"),
        ("bridge", "52:54:00:aa:00:03", "breth0", None),
    ]
    assert_valid(after)

    uri2 = write_node(host, shut_off(after), name="after.xml")
    gone = ansible.module(host, MODULE, {"domain": "web01", "bridge": "brold", "model": "e1000", "state": "absent", "uri": uri2}, diff=True)
    assert [(c["action"], c["mac"]) for c in gone["changes"]] == [("remove", "52:54:00:aa:00:02")]
    after = config_after(gone)
    assert [i[1] for i in interfaces(after)] == ["52:54:00:aa:00:01", "52:54:00:aa:00:03"]
    assert_valid(after)
    uri3 = write_node(host, shut_off(after), name="after2.xml")
    again = ansible.module(host, MODULE, {"domain": "web01", "bridge": "brold", "model": "e1000", "state": "absent", "uri": uri3})
    assert again["changed"] is False, again


def test_a_multicast_mac_is_refused_with_the_kernels_reason(host, ansible):
    add_bridge(host, "breth0")
    uri = write_node(host, domain("web01", UUID1))
    result = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "mac": "01:00:5e:00:00:fb", "uri": uri})
    assert result.get("failed")
    assert "multicast" in result["msg"] and "cannot assign requested address" in result["msg"]


def test_a_mac_in_use_on_the_bridge_is_refused(host, ansible):
    add_bridge(host, "breth0")
    add_bridge(host, "br1")
    host.run(["ip", "link", "add", "d0", "address", "52:54:00:dd:00:01", "type", "veth", "peer", "name", "d0peer"])
    host.run(["ip", "link", "set", "d0", "master", "breth0"])
    uri = write_node(host, domain("web01", UUID1), domain("db01", UUID2, bridge_iface("52:54:00:bb:00:01", "breth0")))
    by_domain = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "mac": "52:54:00:bb:00:01", "uri": uri})
    assert by_domain.get("failed") and "already used on bridge breth0 by domain db01" in by_domain["msg"], by_domain
    by_port = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "mac": "52:54:00:dd:00:01", "uri": uri})
    assert by_port.get("failed") and "port d0 of breth0 on the managed host" in by_port["msg"], by_port
    elsewhere = ansible.module(host, MODULE, {"domain": "web01", "bridge": "br1", "mac": "52:54:00:bb:00:01", "uri": uri}, diff=True)
    assert not elsewhere.get("failed"), elsewhere
    assert interfaces(config_after(elsewhere)) == [("bridge", "52:54:00:bb:00:01", "br1", "virtio")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"domain": "web99"}, r"no such domain 'web99' at test:///etc/kvmb-vmif/node\.xml; the domains there are: web01"),
        ({"bridge": "nobr0"}, r"there is no bridge nobr0 on the managed host \(no /sys/class/net/nobr0\)"),
        ({"bridge": "eth1"}, r"eth1 on the managed host is not a bridge"),
        (
            {"uri": "qemu+unix:///system?socket=/etc/kvmb-vmif/none.sock"},
            r"libvirt is not reachable at qemu\+unix:///system.*Check that the libvirt daemon runs",
        ),
        ({"live": False, "config": False}, r"live and config are both false"),
    ],
)
def test_clear_errors(host, ansible, args, message):
    add_bridge(host, "breth0")
    uri = write_node(host, domain("web01", UUID1))
    result = ansible.module(host, MODULE, dict({"domain": "web01", "bridge": "breth0", "uri": uri}, **args))
    assert result.get("failed"), result
    assert re.search(message, result["msg"]), result["msg"]


def test_a_running_domain_on_a_driver_without_hot_plug(host, ansible):
    add_bridge(host, "breth0")
    uri = write_node(host, domain("web01", UUID1, running=True))
    live = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "uri": uri})
    assert live.get("failed") and "cannot change the devices of a running domain" in live["msg"] and "set live: false" in live["msg"]
    assert live["changed"] is False
    config = ansible.module(host, MODULE, {"domain": "web01", "bridge": "breth0", "live": False, "uri": uri}, diff=True)
    assert not config.get("failed"), config
    assert config["domain"]["active"] is True
    assert [d["after_header"] for d in config["diff"]] == ["web01 (config)"]
    assert interfaces(config_after(config)) == [("bridge", derived("web01", "breth0"), "breth0", "virtio")]

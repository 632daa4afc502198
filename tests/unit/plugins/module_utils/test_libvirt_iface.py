"""vm_interface planning: MAC rules, the domain XML edits and the plan, without libvirt."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_iface as li
from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_xml as lx
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import normalize_mac

# A realistic persistent definition, as libvirt's qemu driver formats it.
WEB01 = """<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>web01</name>
  <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://centos.org/centos/7.0"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web01.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:00:01'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:aa:00:02'/>
      <source bridge='brold'/>
      <model type='e1000'/>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </interface>
    <graphics type='vnc' port='-1' autoport='yes' passwd='s3cret'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-snapshot'/>
  </qemu:commandline>
</domain>
"""

EMPTY = """<domain type='test'>
  <name>empty</name>
  <memory unit='KiB'>524288</memory>
  <os>
    <type arch='i686'>hvm</type>
  </os>
  <devices>
  </devices>
</domain>
"""


def views(*texts, names=("config", "live")):
    return {name: lx.DomainXML(text) for name, text in zip(names, texts)}


def macs_on(view, bridge):
    return [lx.interface_info(elem)["mac"] for elem in view.on_bridge(bridge)]


# --- MAC addresses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("given_mac", "expected"),
    [
        ("52:54:00:12:34:56", "52:54:00:12:34:56"),
        ("52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"),
        (" 52-54-00-ab-cd-ef ", "52:54:00:ab:cd:ef"),
        ("fe:54:00:00:00:01", "fe:54:00:00:00:01"),
        ("02:00:00:00:00:00", "02:00:00:00:00:00"),
    ],
)
def test_unicast_macs_are_normalized(given_mac, expected):
    assert normalize_mac(given_mac) == expected


@pytest.mark.parametrize("bad", ["", "52:54:00:12:34", "52:54:00:12:34:56:78", "52:54:00:12:34:5g", "5254.0012.3456", "52:54-00:12:34:56"])
def test_malformed_macs_are_refused(bad):
    with pytest.raises(ModuleError, match="is not a MAC address"):
        normalize_mac(bad)


@pytest.mark.parametrize("multicast", ["01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff", "53:54:00:12:34:56"])
def test_multicast_macs_are_refused_with_the_kernels_reason(multicast):
    with pytest.raises(ModuleError) as err:
        normalize_mac(multicast)
    assert "multicast" in err.value.msg
    assert "cannot assign requested address" in err.value.msg


def test_the_zero_mac_is_refused():
    with pytest.raises(ModuleError, match="cannot assign requested address"):
        normalize_mac("00:00:00:00:00:00")


def test_derived_mac_is_qemus_prefix_and_a_hash_of_domain_and_bridge():
    digest = hashlib.sha256(b"web01\nbreth0").hexdigest()
    mac = lx.derive_mac("web01", "breth0")
    assert mac == "52:54:00:%s:%s:%s" % (digest[0:2], digest[2:4], digest[4:6])
    assert mac == lx.derive_mac("web01", "breth0")
    assert mac != lx.derive_mac("web02", "breth0")
    assert mac != lx.derive_mac("web01", "breth1")


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=15))
def test_derived_macs_are_always_usable_unicast_addresses(domain, bridge):
    mac = lx.derive_mac(domain, bridge)
    assert normalize_mac(mac) == mac
    assert mac.startswith("52:54:00:")


@pytest.mark.parametrize("bad", ["", "a/b", "br 0", "br:0", "%x", ".", "..", "sixteen-chars-xx", "br0\n", "\u00e9" * 8, "all"])
def test_bridge_names_must_be_interface_names(bad):
    with pytest.raises(ModuleError, match=r"is not a valid interface name|must be a non-empty string"):
        lx.Desired("web01", bad)


@pytest.mark.parametrize("bad", ["virtio\x00", "virtio\n", "e1000 e", "<model/>", "", "v" * 65, 7])
def test_models_must_be_libvirt_model_names(bad):
    with pytest.raises(ModuleError, match="is not a libvirt NIC model"):
        lx.Desired("web01", "br0", model=bad) if bad != "" else lx.check_model(bad)


@pytest.mark.parametrize("good", ["virtio", "e1000e", "rtl8139", "virtio-net-pci", "ne2k_pci"])
def test_models_libvirt_accepts(good):
    assert lx.Desired("web01", "br0", model=good).model == good


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu:///session", True),
        ("qemu+unix:///system?socket=/run/x", True),
        ("test:///default", True),
        ("test:///etc/kvmb/node.xml", True),
        ("qemu+ssh://root@kvm1/system", False),
        ("qemu+tls://kvm1.example/system", False),
    ],
)
def test_local_uris_have_no_host(uri, local):
    assert li.uri_is_local(uri) is local


# --- reading and writing domain XML ------------------------------------------


def test_interfaces_of_lists_every_interface():
    assert lx.interfaces_of(WEB01) == [
        {"type": "network", "mac": "52:54:00:aa:00:01", "bridge": None, "network": "default", "model": "virtio", "target": None},
        {"type": "bridge", "mac": "52:54:00:aa:00:02", "bridge": "brold", "network": None, "model": "e1000", "target": None},
    ]


def test_interfaces_of_reads_the_bridge_of_a_live_network_interface():
    live = (
        "<domain><devices><interface type='network'><mac address='52:54:00:AA:00:01'/>"
        "<source network='default' portid='1' bridge='virbr0'/><target dev='vnet4'/></interface></devices></domain>"
    )
    (info,) = lx.interfaces_of(live)
    assert (info["mac"], info["bridge"], info["network"], info["target"]) == ("52:54:00:aa:00:01", "virbr0", "default", "vnet4")


def test_unchanged_xml_keeps_namespaces_and_every_element():
    view = lx.DomainXML(WEB01)
    out = view.to_string()
    assert 'xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"' in out
    assert '<qemu:arg value="-snapshot" />' in out
    assert '<libosinfo:os id="http://centos.org/centos/7.0" />' in out
    before = ET.fromstring(WEB01)  # noqa: S314 (the test's own XML)
    after = ET.fromstring(out)  # noqa: S314
    assert [e.tag for e in before.iter()] == [e.tag for e in after.iter()]
    assert [e.attrib for e in before.iter()] == [e.attrib for e in after.iter()]


def test_redact_drops_graphics_passwords_only():
    shown = lx.redact(WEB01)
    assert "s3cret" not in shown and "passwd" not in shown
    assert 'autoport="yes"' in shown


# --- the plan ------------------------------------------------------------------


def test_new_interface_goes_after_the_last_interface_indented_like_libvirt():
    desired = lx.Desired("web01", "breth0", mac="52:54:00:12:34:56", model="virtio")
    vs = views(WEB01, names=("config",))
    mac, changes = lx.plan_interface(desired, vs)
    assert mac == "52:54:00:12:34:56"
    assert [c.describe() for c in changes] == ["config: add interface 52:54:00:12:34:56"]
    out = vs["config"].to_string()
    expected = (
        "    </interface>\n"
        '    <interface type="bridge">\n'
        '      <mac address="52:54:00:12:34:56" />\n'
        '      <source bridge="breth0" />\n'
        '      <model type="virtio" />\n'
        "    </interface>\n"
        "    <graphics"
    )
    assert expected in out
    devices = ET.fromstring(out).find("devices")  # noqa: S314
    assert [e.tag for e in devices] == ["emulator", "disk", "interface", "interface", "interface", "graphics"]


def test_new_interface_in_empty_devices():
    vs = views(EMPTY, names=("config",))
    lx.plan_interface(lx.Desired("empty", "br0", mac="52:54:00:00:00:01"), vs)
    out = vs["config"].to_string()
    assert '  <devices>\n    <interface type="bridge">\n      <mac address="52:54:00:00:00:01" />\n' in out
    assert '<model type="virtio" />\n    </interface>\n  </devices>\n</domain>' in out


def test_without_mac_a_new_interface_gets_the_derived_mac_and_virtio():
    vs = views(WEB01, names=("config",))
    mac, changes = lx.plan_interface(lx.Desired("web01", "breth0"), vs)
    assert mac == lx.derive_mac("web01", "breth0")
    assert changes[0].after == {"type": "bridge", "mac": mac, "bridge": "breth0", "network": None, "model": "virtio", "target": None}


def test_the_plan_applied_is_a_fixed_point():
    for desired in (
        lx.Desired("web01", "breth0"),
        lx.Desired("web01", "breth0", mac="52:54:00:aa:00:01", model="e1000e"),
        lx.Desired("web01", "brold", state="absent"),
    ):
        vs = views(WEB01, WEB01)
        _mac, changes = lx.plan_interface(desired, vs)
        assert changes
        again = views(vs["config"].to_string(), vs["live"].to_string())
        assert lx.plan_interface(desired, again)[1] == []


def test_a_given_mac_finds_the_interface_and_moves_it_keeping_its_address():
    vs = views(WEB01, names=("config",))
    _mac, changes = lx.plan_interface(lx.Desired("web01", "breth0", mac="52:54:00:AA:00:02"), vs)
    (change,) = changes
    assert (change.action, change.properties) == ("update", ["bridge"])
    assert change.before["bridge"] == "brold" and change.after["bridge"] == "breth0"
    assert change.after["model"] == "e1000"  # no model given: kept
    elem = vs["config"].by_mac("52:54:00:aa:00:02")
    assert elem.find("address").get("bus") == "0x02"
    assert len(vs["config"].interfaces()) == 2


def test_a_network_interface_becomes_a_bridge_interface():
    vs = views(WEB01, names=("config",))
    _mac, (change,) = lx.plan_interface(lx.Desired("web01", "breth0", mac="52:54:00:aa:00:01", model="e1000e"), vs)
    assert change.properties == ["type", "bridge", "model"]
    elem = vs["config"].by_mac("52:54:00:aa:00:01")
    assert elem.get("type") == "bridge"
    assert elem.find("source").attrib == {"bridge": "breth0"}
    assert elem.find("model").attrib == {"type": "e1000e"}


def test_a_missing_model_element_is_added():
    text = (
        "<domain><name>d</name><devices>\n    <interface type='bridge'>\n      <mac address='52:54:00:00:00:01'/>\n"
        "      <source bridge='br0'/>\n    </interface>\n  </devices></domain>"
    )
    vs = views(text, names=("config",))
    _mac, (change,) = lx.plan_interface(lx.Desired("d", "br0", mac="52:54:00:00:00:01", model="virtio"), vs)
    assert change.properties == ["model"]
    assert '      <source bridge="br0" />\n      <model type="virtio" />\n    </interface>' in vs["config"].to_string()


def test_without_mac_an_interface_on_the_bridge_is_adopted():
    vs = views(WEB01, names=("config",))
    mac, changes = lx.plan_interface(lx.Desired("web01", "brold"), vs)
    assert (mac, changes) == ("52:54:00:aa:00:02", [])
    # With a model that the interface on the bridge does not have: a second interface.
    vs = views(WEB01, names=("config",))
    mac, changes = lx.plan_interface(lx.Desired("web01", "brold", model="virtio"), vs)
    assert mac == lx.derive_mac("web01", "brold")
    assert [c.action for c in changes] == ["add"]


def test_the_derived_mac_wins_over_adoption_so_model_changes_update_in_place():
    vs = views(WEB01, names=("config",))
    lx.plan_interface(lx.Desired("web01", "breth0"), vs)
    lx.plan_interface(lx.Desired("web01", "breth0", mac="52:54:00:00:00:77"), vs)  # another one on breth0, listed last
    text = vs["config"].to_string()
    vs = views(text, names=("config",))
    mac, (change,) = lx.plan_interface(lx.Desired("web01", "breth0", model="e1000e"), vs)
    assert mac == lx.derive_mac("web01", "breth0")
    assert (change.action, change.properties) == ("update", ["model"])


def test_live_and_config_use_one_mac():
    live = WEB01
    config = WEB01.replace("brold", "brnew")
    vs = views(config, live)
    # Only the live view has an interface on brold: its MAC is used in the config too.
    mac, changes = lx.plan_interface(lx.Desired("web01", "brold"), vs)
    assert mac == "52:54:00:aa:00:02"
    assert [(c.view, c.action, c.properties) for c in changes] == [("config", "update", ["bridge"])]


def test_an_interface_without_mac_chosen_on_the_bridge_is_refused_where_a_view_lacks_it():
    # Hand-made XML (libvirt's always has <mac>): adopted in the view that has it, nothing to match in the other.
    no_mac = EMPTY.replace("  <devices>\n", "  <devices>\n    <interface type='bridge'>\n      <source bridge='br0'/>\n    </interface>\n")
    assert views(no_mac, names=("config",))["config"].on_bridge("br0")
    assert lx.plan_interface(lx.Desired("empty", "br0"), views(no_mac, names=("config",))) == (None, [])
    vs = views(no_mac, EMPTY)
    before = {name: view.to_string() for name, view in vs.items()}
    with pytest.raises(ModuleError, match=r"without a MAC address .* not in its live definition; set mac"):
        lx.plan_interface(lx.Desired("empty", "br0"), vs)
    assert {name: view.to_string() for name, view in vs.items()} == before


def test_absent_with_mac_removes_only_that_interface_on_that_bridge():
    vs = views(WEB01, names=("config",))
    _mac, changes = lx.plan_interface(lx.Desired("web01", "brother", mac="52:54:00:aa:00:02", state="absent"), vs)
    assert changes == []
    _mac, (change,) = lx.plan_interface(lx.Desired("web01", "brold", mac="52:54:00:aa:00:02", state="absent"), vs)
    assert change.action == "remove" and change.before["mac"] == "52:54:00:aa:00:02"
    out = vs["config"].to_string()
    assert "52:54:00:aa:00:02" not in out
    assert '      <address type="pci" domain="0x0000" bus="0x01" slot="0x00" function="0x0" />\n    </interface>\n    <graphics' in out


def test_absent_without_mac_removes_every_interface_on_the_bridge_of_the_model():
    text = WEB01.replace("<source network='default'/>", "<source bridge='brold'/>").replace("type='network'", "type='bridge'")
    vs = views(text, names=("config",))
    _mac, changes = lx.plan_interface(lx.Desired("web01", "brold", state="absent", model="e1000"), vs)
    assert [c.before["mac"] for c in changes] == ["52:54:00:aa:00:02"]
    _mac, changes = lx.plan_interface(lx.Desired("web01", "brold", state="absent"), vs)
    assert [c.before["mac"] for c in changes] == ["52:54:00:aa:00:01"]
    assert macs_on(vs["config"], "brold") == []


def test_absent_removing_the_only_device_keeps_the_closing_tag_indented():
    text = "<domain>\n  <devices>\n    <interface type='bridge'>\n      <source bridge='br0'/>\n    </interface>\n  </devices>\n</domain>"
    vs = views(text, names=("config",))
    lx.plan_interface(lx.Desired("d", "br0", state="absent"), vs)
    assert vs["config"].to_string() == "<domain>\n  <devices>\n  </devices>\n</domain>"


def test_changes_say_when_a_mac_arrives_on_the_bridge():
    vs = views(WEB01, names=("config",))
    _mac, (move,) = lx.plan_interface(lx.Desired("web01", "breth0", mac="52:54:00:aa:00:02"), vs)
    assert move.brings_mac_to("breth0")
    vs = views(WEB01, names=("config",))
    _mac, (model,) = lx.plan_interface(lx.Desired("web01", "brold", mac="52:54:00:aa:00:02", model="virtio"), vs)
    assert not model.brings_mac_to("brold")


def test_mac_conflicts_are_other_users_on_the_same_bridge():
    users = [
        ("domain a", "52:54:00:00:00:01", "br0"),
        ("domain b", "52:54:00:00:00:01", "br1"),
        ("port eth0 of br0", "52:54:00:00:00:02", "br0"),
        ("domain a", "52:54:00:00:00:01", "br0"),
    ]
    assert lx.find_mac_conflicts("52:54:00:00:00:01", "br0", users) == ["domain a"]
    assert lx.find_mac_conflicts("52:54:00:00:00:02", "br0", users) == ["port eth0 of br0"]
    assert lx.find_mac_conflicts("52:54:00:00:00:03", "br0", users) == []


# --- the host's bridges (sysfs) ---------------------------------------------------


def fake_sysfs(tmp_path):
    net = tmp_path / "net"
    (net / "breth0" / "bridge").mkdir(parents=True)
    (net / "breth0" / "brif" / "eth0").mkdir(parents=True)
    (net / "breth0" / "brif" / "vnet0").mkdir(parents=True)
    (net / "eth0").mkdir()
    (net / "eth0" / "address").write_text("52:54:00:EE:00:01\n")
    (net / "vnet0").mkdir()
    (net / "vnet0" / "address").write_text("fe:54:00:12:34:56\n")
    return str(net)


def test_bridge_state_tells_bridges_from_other_links(tmp_path):
    sysfs = fake_sysfs(tmp_path)
    assert li.bridge_state("breth0", sysfs) == "bridge"
    assert li.bridge_state("eth0", sysfs) == "other"
    assert li.bridge_state("nope", sysfs) is None


def test_port_macs_of_a_bridge(tmp_path):
    sysfs = fake_sysfs(tmp_path)
    assert li.read_port_macs("breth0", sysfs) == {"eth0": "52:54:00:ee:00:01", "vnet0": "fe:54:00:12:34:56"}
    assert li.read_port_macs("nope", sysfs) == {}


@pytest.mark.parametrize(("bridge", "message"), [("eth0", "eth0 on the managed host is not a bridge"), ("nope", "there is no bridge nope on the managed host")])
def test_check_bridge_on_a_local_uri_reads_sysfs(tmp_path, bridge, message):
    sysfs = fake_sysfs(tmp_path)
    assert li.check_bridge(None, "qemu:///system", "breth0", sysfs) is None
    with pytest.raises(ModuleError, match=message):
        li.check_bridge(None, "test:///default", bridge, sysfs)


# --- the XML written is valid for libvirt's schema -------------------------------


def test_planned_definitions_validate_against_libvirts_schema(tmp_path):
    assert shutil.which("virt-xml-validate"), "virt-xml-validate is not installed: scripts/setup.sh installs it (libvirt-clients)"
    for desired in (
        lx.Desired("web01", "breth0"),
        lx.Desired("web01", "breth0", mac="52:54:00:aa:00:01", model="e1000e"),
        lx.Desired("web01", "brold", state="absent"),
    ):
        vs = views(WEB01, names=("config",))
        lx.plan_interface(desired, vs)
        path = tmp_path / "domain.xml"
        path.write_text(vs["config"].to_string())
        proc = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


desired_strategy = st.builds(
    lx.Desired,
    domain=st.just("web01"),
    bridge=st.sampled_from(["breth0", "brold", "br1"]),
    state=st.sampled_from(["present", "absent"]),
    mac=st.one_of(st.none(), st.sampled_from(["52:54:00:aa:00:01", "52:54:00:aa:00:02", "52:54:00:12:34:56"])),
    model=st.one_of(st.none(), st.sampled_from(["virtio", "e1000", "rtl8139"])),
)


@given(st.lists(desired_strategy, min_size=1, max_size=6))
def test_any_sequence_of_tasks_leaves_each_one_a_fixed_point(tasks):
    text = WEB01
    for desired in tasks:
        before = {i["mac"]: i for i in lx.interfaces_of(text)}
        vs = views(text, names=("config",))
        mac, _changes = lx.plan_interface(desired, vs)
        text = vs["config"].to_string()
        again = views(text, names=("config",))
        assert lx.plan_interface(desired, again)[1] == []
        after = {i["mac"]: i for i in lx.interfaces_of(text)}
        if desired.state == "present":
            match = after[mac]
            assert (match["type"], match["bridge"]) == ("bridge", desired.bridge)
            if desired.model is not None:
                assert match["model"] == desired.model
            elif mac in before:  # an existing interface keeps the model it had
                assert match["model"] == before[mac]["model"]
            else:  # a new interface without a model gets virtio
                assert match["model"] == "virtio"
            # every other interface is left exactly as it was
            assert {m: i for m, i in after.items() if m != mac} == {m: i for m, i in before.items() if m != mac}
        elif desired.mac is None:
            assert not [i for i in after.values() if i["type"] == "bridge" and i["bridge"] == desired.bridge and desired.model in (None, i["model"])]
        else:
            # absent with a MAC: exactly that interface goes, and only when it is on the bridge (and of the model,
            # when one is given); every other interface stays as it was
            old = before.get(desired.mac)
            goes = old is not None and old["type"] == "bridge" and old["bridge"] == desired.bridge and desired.model in (None, old["model"])
            assert after == {m: i for m, i in before.items() if not (goes and m == desired.mac)}

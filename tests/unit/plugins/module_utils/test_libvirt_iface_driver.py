"""vm_interface against libvirt's own test driver (real libvirt code, in-process, no daemon).

The test driver keeps its state per connection, so each test opens one
connection to a node file of its own and reads the result back through it.
It cannot hot plug (attach/update/detachDeviceFlags answer "not supported"),
so the live path is tested with a recording stand-in at the end.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_iface as li
from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_xml as lx
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

libvirt = pytest.importorskip("libvirt")

NODE = """<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>web01</name>
    <uuid>3deda32b-04b6-47d0-b36a-b09037689f42</uuid>
    <memory>524288</memory>
    <os><type>hvm</type></os>
    <devices>
      <interface type='bridge'>
        <mac address='52:54:00:aa:00:02'/>
        <source bridge='brold'/>
        <model type='e1000'/>
      </interface>
      <graphics type='vnc' port='5901' passwd='s3cret'/>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>
  <domain type='test'>
    <name>db01</name>
    <uuid>5cd044d1-9846-4d92-8bb2-850626374163</uuid>
    <memory>524288</memory>
    <os><type>hvm</type></os>
    <devices>
      <interface type='bridge'>
        <mac address='52:54:00:bb:00:01'/>
        <source bridge='breth0'/>
      </interface>
      <interface type='network'>
        <mac address='52:54:00:bb:00:02'/>
        <source network='isolated'/>
      </interface>
    </devices>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>scratch</name>
    <uuid>9a1c9c5e-2f7b-4c47-9b4e-1d0b7c0e0c01</uuid>
    <memory>524288</memory>
    <os><type>hvm</type></os>
    <devices/>
    <test:transient/>
  </domain>
  <network>
    <name>isolated</name>
    <uuid>004b22212d78c30f5aa5f03c87d21e69</uuid>
    <bridge name='brnat'/>
  </network>
</node>
"""


@pytest.fixture
def sysfs(tmp_path):
    net = tmp_path / "sys" / "net"
    for bridge in ("breth0", "brnat", "brold"):
        (net / bridge / "bridge").mkdir(parents=True)
    (net / "breth0" / "brif" / "eth0").mkdir(parents=True)
    (net / "eth0").mkdir()
    (net / "eth0" / "address").write_text("52:54:00:ee:00:01\n")
    return str(net)


@pytest.fixture
def uri(node_uri):
    return node_uri(NODE)


@pytest.fixture
def conn(uri):
    the_conn = li.open_connection(uri)
    yield the_conn
    the_conn.close()


def config_xml(conn, name):
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def assert_valid(tmp_path, xml_text):
    # A failure, not a skip: a skip here would hide the asserts that follow in the caller.
    assert shutil.which("virt-xml-validate"), "virt-xml-validate is not installed: scripts/setup.sh installs it (libvirt-clients)"
    path = tmp_path / "check.xml"
    path.write_text(xml_text)
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def run(conn, uri, sysfs, *args, live=True, config=True, check_mode=False, **kwargs):
    return li.ensure_interface(conn, uri, lx.Desired(*args, **kwargs), live=live, config=config, check_mode=check_mode, sysfs=sysfs)


def test_add_defines_the_interface_and_the_second_run_changes_nothing(conn, uri, sysfs, tmp_path):
    result, warnings = run(conn, uri, sysfs, "web01", "breth0", mac="52:54:00:12:34:56", model="virtio")
    assert warnings == []
    assert result["changed"] is True
    assert result["domain"] == {"name": "web01", "uuid": "3deda32b-04b6-47d0-b36a-b09037689f42", "active": False, "persistent": True}
    ifaces = lx.interfaces_of(config_xml(conn, "web01"))
    assert [(i["mac"], i["bridge"], i["model"]) for i in ifaces] == [
        ("52:54:00:aa:00:02", "brold", "e1000"),
        ("52:54:00:12:34:56", "breth0", "virtio"),
    ]
    assert result["interface"]["mac"] == "52:54:00:12:34:56" and result["interface"]["bridge"] == "breth0"
    assert_valid(tmp_path, config_xml(conn, "web01"))
    (diff,) = result["diff"]
    assert diff["before_header"] == "web01 (config)"
    assert "52:54:00:12:34:56" not in diff["before"] and '<mac address="52:54:00:12:34:56" />' in diff["after"]
    assert "s3cret" not in diff["before"] + diff["after"]
    # The password survived the redefinition (the XML was read with VIR_DOMAIN_XML_SECURE).
    secure = conn.lookupByName("web01").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    assert "passwd='s3cret'" in secure

    again, _warnings = run(conn, uri, sysfs, "web01", "breth0", mac="52:54:00:12:34:56", model="virtio")
    assert again["changed"] is False and again["changes"] == [] and again["diff"] == []


def test_check_mode_plans_but_defines_nothing(conn, uri, sysfs):
    before = config_xml(conn, "web01")
    result, _warnings = run(conn, uri, sysfs, "web01", "breth0", check_mode=True)
    assert result["changed"] is True
    assert [c["action"] for c in result["changes"]] == ["add"]
    assert result["interface"]["mac"] == lx.derive_mac("web01", "breth0")
    assert lx.derive_mac("web01", "breth0") in result["diff"][0]["after"]
    assert config_xml(conn, "web01") == before


def test_derived_mac_then_model_change_updates_the_same_interface(conn, uri, sysfs, tmp_path):
    first, _w = run(conn, uri, sysfs, "web01", "breth0")
    mac = lx.derive_mac("web01", "breth0")
    assert first["interface"]["mac"] == mac and first["interface"]["model"] == "virtio"
    second, _w = run(conn, uri, sysfs, "web01", "breth0", model="e1000e")
    assert [(c["action"], c["changed"]) for c in second["changes"]] == [("update", ["model"])]
    ifaces = [i for i in lx.interfaces_of(config_xml(conn, "web01")) if i["mac"] == mac]
    assert [(i["bridge"], i["model"]) for i in ifaces] == [("breth0", "e1000e")]
    assert_valid(tmp_path, config_xml(conn, "web01"))


def test_move_keeps_the_mac_and_absent_removes(conn, uri, sysfs, tmp_path):
    moved, _w = run(conn, uri, sysfs, "web01", "breth0", mac="52:54:00:aa:00:02")
    assert moved["changes"][0]["changed"] == ["bridge"]
    assert [(i["mac"], i["bridge"], i["model"]) for i in lx.interfaces_of(config_xml(conn, "web01"))] == [("52:54:00:aa:00:02", "breth0", "e1000")]
    gone, _w = run(conn, uri, sysfs, "web01", "breth0", state="absent")
    assert [c["action"] for c in gone["changes"]] == ["remove"] and gone["interface"] is None
    assert lx.interfaces_of(config_xml(conn, "web01")) == []
    assert_valid(tmp_path, config_xml(conn, "web01"))
    again, _w = run(conn, uri, sysfs, "web01", "breth0", state="absent")
    assert again["changed"] is False


def test_absent_does_not_need_the_bridge(conn, uri, sysfs):
    result, _w = run(conn, uri, sysfs, "web01", "gone0", state="absent")
    assert result["changed"] is False


@pytest.mark.parametrize(
    ("bridge", "mac", "who"),
    [
        ("breth0", "52:54:00:bb:00:01", "domain db01"),  # db01's bridge interface (live and persistent)
        ("brnat", "52:54:00:bb:00:02", "domain db01"),  # db01's network interface: the network's bridge
        ("breth0", "52:54:00:ee:00:01", "port eth0 of breth0 on the managed host"),
    ],
)
def test_a_mac_in_use_on_the_bridge_is_refused(conn, uri, sysfs, bridge, mac, who):
    with pytest.raises(ModuleError) as err:
        run(conn, uri, sysfs, "web01", bridge, mac=mac)
    assert "already used on bridge %s by %s" % (bridge, who) in err.value.msg
    # The same MAC on another bridge is fine.
    result, _w = run(conn, uri, sysfs, "web01", "brold", mac=mac, check_mode=True)
    assert result["changed"] is True


def test_no_such_domain_names_the_domains_there(conn, uri, sysfs):
    with pytest.raises(ModuleError, match=r"no such domain 'web99' at test://.*the domains there are: db01, scratch, web01"):
        run(conn, uri, sysfs, "web99", "breth0")


def test_a_domain_can_be_named_by_uuid_and_the_mac_follows_its_name(conn, uri, sysfs):
    result, _w = run(conn, uri, sysfs, "3deda32b-04b6-47d0-b36a-b09037689f42", "breth0", check_mode=True)
    assert result["interface"]["mac"] == lx.derive_mac("web01", "breth0")


@pytest.mark.parametrize(
    ("bridge", "message"), [("nobr0", "there is no bridge nobr0 on the managed host"), ("eth0", "eth0 on the managed host is not a bridge")]
)
def test_the_bridge_must_exist_on_the_host(conn, uri, sysfs, bridge, message):
    with pytest.raises(ModuleError, match=message):
        run(conn, uri, sysfs, "web01", bridge)


def test_libvirt_not_reachable(tmp_path):
    for uri in ("qemu+unix:///system?socket=%s/none.sock" % tmp_path, "test://%s/missing.xml" % tmp_path):
        with pytest.raises(ModuleError, match=re.escape("libvirt is not reachable at %s: " % uri)):
            li.open_connection(uri)


def test_live_on_a_running_domain_of_the_test_driver_says_what_to_do(conn, uri, sysfs):
    with pytest.raises(ModuleError, match=r"cannot change the devices of a running domain.*set live: false") as err:
        run(conn, uri, sysfs, "db01", "brold")
    assert err.value.result["changed"] is False
    result, _w = run(conn, uri, sysfs, "db01", "brold", live=False)
    assert [c["view"] for c in result["changes"]] == ["config"]
    assert lx.derive_mac("db01", "brold") in config_xml(conn, "db01")


def test_a_transient_domain_has_no_config_to_change(conn, uri, sysfs):
    with pytest.raises(ModuleError, match=r"domain scratch is transient.*set config: false"):
        run(conn, uri, sysfs, "scratch", "breth0")


def test_live_and_config_both_off_is_an_error(conn, uri, sysfs):
    with pytest.raises(ModuleError, match="live and config are both false"):
        run(conn, uri, sysfs, "web01", "breth0", live=False, config=False)


def test_tap_owners_names_the_domain_behind_each_tap():
    conn = li.open_connection("test:///default")
    try:
        owners = li.tap_owners(conn)
    finally:
        conn.close()
    assert owners == {"testnet0": {"domain": "test", "mac": "aa:bb:cc:dd:ee:ff", "bridge": None, "model": None}}


# --- the live path, with a stand-in for a hypervisor that hot plugs ---------------


class HotplugDomain:
    """Just enough of virDomain for ensure_interface: a running, persistent domain that records device calls."""

    def __init__(self, xml_text):
        self.live = xml_text
        self.config = xml_text
        self.calls = []

    def name(self):
        return "web01"

    def UUIDString(self):
        return "3deda32b-04b6-47d0-b36a-b09037689f42"

    def isActive(self):
        return 1

    def isPersistent(self):
        return 1

    def XMLDesc(self, flags=0):
        return self.config if flags & libvirt.VIR_DOMAIN_XML_INACTIVE else self.live

    def _device(self, what, xml_text, flags):
        self.calls.append((what, xml_text, flags))
        view = lx.DomainXML(self.live)
        info = lx.interfaces_of("<domain><devices>%s</devices></domain>" % xml_text)[0]
        old = view.by_mac(info["mac"])
        if old is not None:
            view.remove(old)
        if what != "detach":
            view.add(lx.DomainXML("<domain><devices>%s</devices></domain>" % xml_text).interfaces()[0])
        self.live = view.to_string()

    def attachDeviceFlags(self, xml_text, flags):
        self._device("attach", xml_text, flags)

    def updateDeviceFlags(self, xml_text, flags):
        self._device("update", xml_text, flags)

    def detachDeviceFlags(self, xml_text, flags):
        self._device("detach", xml_text, flags)


class HotplugConn:
    def __init__(self, dom):
        self.dom = dom
        self.defined = []

    def lookupByName(self, name):
        if name != "web01":
            raise libvirt.libvirtError("Domain not found")
        return self.dom

    def listAllDomains(self, flags=0):
        return [self.dom]

    def defineXML(self, xml_text):
        self.defined.append(xml_text)
        self.dom.config = xml_text


LIVE = """<domain type='kvm' id='7'>
  <name>web01</name>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:aa:00:02'/>
      <source bridge='brold'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
      <alias name='net0'/>
    </interface>
  </devices>
</domain>
"""


@pytest.mark.parametrize(
    ("kwargs", "call", "flags"),
    [
        ({"mac": "52:54:00:12:34:56"}, "attach", libvirt.VIR_DOMAIN_AFFECT_LIVE),
        ({"mac": "52:54:00:aa:00:02"}, "update", libvirt.VIR_DOMAIN_AFFECT_LIVE),
        ({"mac": "52:54:00:aa:00:02", "state": "absent", "bridge": "brold"}, "detach", libvirt.VIR_DOMAIN_AFFECT_LIVE),
    ],
)
def test_live_changes_use_the_device_api_and_config_changes_define(sysfs, kwargs, call, flags):
    dom = HotplugDomain(LIVE)
    conn = HotplugConn(dom)
    bridge = kwargs.pop("bridge", "breth0")
    result, warnings = li.ensure_interface(conn, "qemu:///system", lx.Desired("web01", bridge, **kwargs), sysfs=sysfs)
    assert warnings == []
    assert [c["view"] for c in result["changes"]] == ["config", "live"]
    ((what, device, got_flags),) = dom.calls
    assert (what, got_flags) == (call, flags)
    assert device.startswith("<interface") and device.rstrip().endswith("</interface>")
    assert len(conn.defined) == 1
    if call == "update":
        # The whole live element goes to libvirt, so target and alias identify the NIC.
        assert '<target dev="vnet3" />' in device and '<alias name="net0" />' in device
        assert result["interface"]["tap"] == "vnet3"
    again, _w = li.ensure_interface(conn, "qemu:///system", lx.Desired("web01", bridge, **kwargs), sysfs=sysfs)
    assert again["changed"] is False and len(dom.calls) == 1


def test_a_live_detach_the_guest_has_not_acknowledged_warns(sysfs):
    dom = HotplugDomain(LIVE)
    dom.detachDeviceFlags = lambda xml_text, flags: dom.calls.append(("detach", xml_text, flags))
    conn = HotplugConn(dom)
    _result, warnings = li.ensure_interface(conn, "qemu:///system", lx.Desired("web01", "brold", state="absent"), sysfs=sysfs)
    assert len(warnings) == 1 and "has not released interface 52:54:00:aa:00:02" in warnings[0]


def test_check_mode_touches_neither_view(sysfs):
    dom = HotplugDomain(LIVE)
    conn = HotplugConn(dom)
    result, _w = li.ensure_interface(conn, "qemu:///system", lx.Desired("web01", "breth0"), check_mode=True, sysfs=sysfs)
    assert result["changed"] is True and len(result["diff"]) == 2
    assert dom.calls == [] and conn.defined == []


# --- remote URIs: the bridge check asks libvirt's interface API ----------------------


def test_remote_bridge_check_uses_the_interface_api():
    # The test driver's interface API (it knows eth1, an ethernet interface) stands in for a remote host's.
    conn = li.open_connection("test:///default")
    try:
        remote = "qemu+ssh://root@kvm1/system"
        with pytest.raises(ModuleError, match=re.escape("eth1 on the hypervisor host of qemu+ssh://root@kvm1/system is not a bridge")):
            li.check_bridge(conn, remote, "eth1")
        with pytest.raises(ModuleError, match="there is no bridge breth0 on the hypervisor host"):
            li.check_bridge(conn, remote, "breth0")
        conn.interfaceDefineXML(
            "<interface type='bridge' name='breth0'><start mode='onboot'/><bridge stp='off'><interface type='ethernet' name='eth9'/></bridge></interface>"
        )
        assert li.check_bridge(conn, remote, "breth0") is None
    finally:
        conn.close()


def test_remote_bridge_check_warns_when_the_driver_cannot_tell():
    class NoInterfaceApi:
        def interfaceLookupByName(self, name):
            raise NoSupport()

    class NoSupport(libvirt.libvirtError):
        """A driver error as libvirt raises it, without libvirt's last-error lookup."""

        def __init__(self):
            super().__init__("this function is not supported by the connection driver: virInterfaceLookupByName")

        def get_error_code(self):
            return libvirt.VIR_ERR_NO_SUPPORT

    warning = li.check_bridge(NoInterfaceApi(), "qemu+ssh://kvm1/system", "breth0")
    assert warning.startswith("could not check that bridge breth0 exists on the hypervisor host of qemu+ssh://kvm1/system")

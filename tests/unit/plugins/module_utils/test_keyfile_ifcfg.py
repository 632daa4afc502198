"""ifcfg -> keyfile conversion on NetworkManager's own ifcfg test files; every result is read back with libnm 1.42."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _ifcfg_codec, _keyfile, _keyfile_ifcfg, _keyfile_plan
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE = os.path.join(HERE, "nm_keyfile_oracle.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
SCRIPTS = os.environ.get("KVMB_IFCFG_SCRIPTS", os.path.join(os.path.dirname(ROOT), "shared", "conformance", "ifcfg", "nm-network-scripts"))
UUID = "5f7b6c1e-2f1a-4f55-9a57-3e1d2c0b9a10"


def convert(name, path=None):
    with open(os.path.join(SCRIPTS, name), "rb") as handle:
        variables = _ifcfg_codec.parse(handle.read())
    if variables.get("UUID") == "${UUID}":  # the upstream writer tests' placeholder
        variables["UUID"] = UUID
    return _keyfile_ifcfg.convert(variables, path or "/etc/sysconfig/network-scripts/" + name.split(".")[0])


def nm_read(tmp_path, result):
    path = tmp_path / result["file_name"]
    path.write_text(result["text"])
    out = subprocess.run(["/usr/bin/python3", ORACLE, str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[str(path)]


def test_bridge_main(tmp_path):
    result = convert("ifcfg-test-bridge-main")
    assert result["unconverted"] == []
    assert result["groups"]["bridge"] == {
        "stp": "true", "forward-delay": "2", "priority": "32744", "hello-time": "7", "max-age": "39", "ageing-time": "235352",
        "multicast-snooping": "false", "group-forward-mask": "24", "vlan-filtering": "true", "vlan-default-pvid": "99",
    }  # fmt: skip
    nm = nm_read(tmp_path, result)
    assert (nm["id"], nm["type"], nm["interface_name"], nm["autoconnect"]) == ("System br0", "bridge", "br0", False)
    assert nm["uuid"] == _keyfile_ifcfg.legacy_uuid("/etc/sysconfig/network-scripts/ifcfg-test-bridge-main")
    assert nm["bridge"] == {"stp": True, "forward_delay": 2}
    assert nm["cloned_mac_address"] == "00:16:41:11:22:33"
    assert nm["ipv4"]["method"] == "auto"
    assert nm["ipv6"]["method"] == "ignore"


def test_bridge_without_stp_has_stp_off(tmp_path):
    result = convert("ifcfg-test-bridge-missing-stp")
    assert nm_read(tmp_path, result)["bridge"] == {"stp": False, "forward_delay": 15}


@pytest.mark.parametrize("name", ["ifcfg-test-bridge-component", "ifcfg-System_test-bridge-component-a.cexpected"])
def test_bridge_port(tmp_path, name):
    result = convert(name)
    assert result["unconverted"] == []
    nm = nm_read(tmp_path, result)
    assert (nm["type"], nm["interface_name"], nm["controller"], nm["port_type"]) == ("802-3-ethernet", "eth0", "br0", "bridge")
    assert nm["mac_address"] == "00:22:15:59:62:97"
    assert nm["ipv4"] == {} and "ipv4" not in result["groups"]
    assert result["groups"]["bridge-port"]["priority"] == "28"
    assert result["groups"]["bridge-port"]["hairpin-mode"] == "true"
    assert result["profile"]["controller_keys"] == ["master", "controller"]


def test_port_with_vlans_reports_what_it_does_not_convert():
    result = convert("ifcfg-Test_Write_Bridge_Component.cexpected")
    assert result["groups"]["bridge-port"] == {"priority": "50", "path-cost": "33"}
    assert result["groups"]["ethernet"]["mtu"] == "1492"
    assert result["unconverted"] == ["BRIDGE_PORT_VLANS"]
    assert result["uuid"] == UUID


def test_plain_dhcp_nic(tmp_path):
    result = convert("ifcfg-System_test-bridge-component-b.cexpected")
    assert result["unconverted"] == []
    nm = nm_read(tmp_path, result)
    assert (nm["id"], nm["uuid"], nm["controller"]) == ("System test-bridge-component", UUID, None)
    assert nm["ipv4"]["method"] == "auto" and nm["ipv6"]["method"] == "auto"
    assert nm["autoconnect"] is False


STATIC = {
    "DEVICE": "eth1", "BOOTPROTO": "none", "IPADDR": "198.18.5.10", "NETMASK": "255.255.255.0", "IPADDR1": "198.18.6.10",
    "PREFIX1": "25", "GATEWAY": "198.18.5.1", "DNS1": "198.18.5.53", "DNS2": "2001:db8::53", "ONBOOT": "yes",
    "NM_CONTROLLED": "no", "IPV6INIT": "yes", "IPV6_AUTOCONF": "no", "IPV6ADDR": "2001:db8::10/64",
    "IPV6_DEFAULTGW": "2001:db8::1", "ZONE": "trusted", "MTU": "9000",
}  # fmt: skip


def test_static_nic_with_dns_and_gateway(tmp_path):
    result = _keyfile_ifcfg.convert(STATIC, "/etc/sysconfig/network-scripts/ifcfg-eth1")
    nm = nm_read(tmp_path, result)
    assert nm["ipv4"] == {"method": "manual", "addresses": ["198.18.5.10/24", "198.18.6.10/25"], "gateway": "198.18.5.1", "dns": ["198.18.5.53"]}
    assert nm["ipv6"] == {"method": "manual", "addresses": ["2001:db8::10/64"], "gateway": "2001:db8::1", "dns": ["2001:db8::53"]}
    assert nm["autoconnect"] is True
    assert "NM_CONTROLLED=no" in result["warnings"][0]


def test_defroute_no_is_never_default_without_gateway(tmp_path):
    result = _keyfile_ifcfg.convert(dict(STATIC, DEFROUTE="no"), "/etc/sysconfig/network-scripts/ifcfg-eth1")
    assert result["groups"]["ipv4"]["never-default"] == "true" and "gateway" not in result["groups"]["ipv4"]
    assert nm_read(tmp_path, result)["ipv4"]["gateway"] is None


def test_no_bootproto_and_no_address_is_ipv4_disabled(tmp_path):
    result = convert("ifcfg-test-misc-variables")
    assert nm_read(tmp_path, result)["ipv4"]["method"] == "disabled"
    assert result["unconverted"] == ["HWADDR_BLACKLIST", "AUTOCONNECT_RETRIES"]


def test_match_keys_are_reported():
    result = convert("ifcfg-Test_Write_Wired_match.cexpected", "/etc/sysconfig/network-scripts/ifcfg-eth9")
    assert result["interface"] == "eth9"
    assert result["unconverted"] == ["MATCH_DRIVER", "MATCH_INTERFACE_NAME", "MATCH_KERNEL_COMMAND_LINE"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ifcfg-test-unrecognized", "badly quoted values (NAME)"),  # NAME=U Can't Touch This
        ("ifcfg-test-variables-corner-cases-1", "badly quoted values (NAME, ZONE)"),
    ],
)
def test_what_cannot_be_converted_is_an_error(name, message):
    with pytest.raises(ModuleError) as info:
        convert(name)
    assert message in info.value.msg


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DEVICE": "bond0", "TYPE": "Bond"}, "TYPE=Bond"),
        ({"DEVICE": "br0", "TYPE": "Bridge", "BRIDGE": "br1"}, "does not nest bridges"),
        ({"DEVICE": "eth0", "HWADDR": "00:11:22:33"}, "HWADDR=00:11:22:33 is not a MAC"),
        ({"DEVICE": "eth0", "BOOTPROTO": "ibft"}, "BOOTPROTO=ibft"),
        ({"DEVICE": "eth0", "UUID": "x"}, "UUID=x is not a uuid"),
    ],
)
def test_unsupported_profiles_are_refused(variables, message):
    with pytest.raises(ModuleError) as info:
        _keyfile_ifcfg.convert(variables, "/etc/sysconfig/network-scripts/ifcfg-x")
    assert message in info.value.msg


def test_legacy_uuid_is_the_md5_of_the_path():
    assert _keyfile_ifcfg.legacy_uuid("/etc/sysconfig/network-scripts/ifcfg-eth0") == "5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03"


@pytest.mark.parametrize(
    "name",
    ["ifcfg-test-bridge-main", "ifcfg-test-bridge-component", "ifcfg-System_test-bridge-component-b.cexpected", "ifcfg-test-bridge-missing-stp", "static"],
)
def test_module_params_write_the_same_profile_through_nm_keyfile(name):
    converted = _keyfile_ifcfg.convert(STATIC, "/etc/sysconfig/network-scripts/ifcfg-eth1") if name == "static" else convert(name)
    request = _keyfile_plan.build_request(_keyfile_ifcfg.module_params(converted))
    plan = _keyfile_plan.plan({}, request, "00000000-0000-4000-8000-000000000000")
    assert plan.file_name == converted["file_name"]
    written = _keyfile.read_profile(plan.after, plan.file_name)
    assert {k: v for k, v in written.items() if k != "settings"} == {k: v for k, v in converted["profile"].items() if k != "settings"}
    assert _keyfile.KeyFile.parse(plan.after).as_dict() == _keyfile.KeyFile.parse(converted["text"]).as_dict()

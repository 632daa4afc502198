"""Module parameters -> desired ifcfg keys, and every up-front rejection."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _ifcfg, _ifcfg_codec
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError


def request(**params):
    params.setdefault("state", "present")
    params.setdefault("config_dir", "/etc/sysconfig/network-scripts")
    return _ifcfg.build_request(params)


def rejects(match, **params):
    with pytest.raises(ModuleError, match=match):
        request(**params)


def test_issue_targets():
    port = request(device="eth0", bridge="breth0", bootproto="none", hwaddr="52:54:00:12:34:56", onboot=True, nm_controlled=False)
    assert port.path == "/etc/sysconfig/network-scripts/ifcfg-eth0"
    assert _ifcfg.plan_rewrite(None, port.desired).after == (
        "DEVICE=eth0\nBRIDGE=breth0\nBOOTPROTO=none\nHWADDR=52:54:00:12:34:56\nONBOOT=yes\nNM_CONTROLLED=no\n"
    )
    bridge = request(device="breth0", type="bridge", bootproto="dhcp", onboot=True, stp=False, delay=0)
    assert _ifcfg.plan_rewrite(None, bridge.desired).after == "DEVICE=breth0\nTYPE=Bridge\nBOOTPROTO=dhcp\nONBOOT=yes\nSTP=no\nDELAY=0\n"


def test_all_options():
    req = request(
        device="brvm",
        type="bridge",
        bootproto="static",
        addresses=["198.18.5.10/24", "198.18.6.10/23"],
        gateway="198.18.5.1",
        dns=["198.18.5.1", "2001:db8::53"],
        macaddr="52:54:00:ab:cd:ef",
        userctl=False,
        peerdns=True,
        peerntp=False,
        stp=True,
        delay=2,
        bridging_opts={"priority": 32768, "hairpin_mode": 1, "multicast_snooping": False},
        settings={"NAME": "VM net", "MTU": 9000, "IPV6INIT": True, "OLD": None},
        purge=True,
    )
    assert req.desired == {
        "DEVICE": "brvm",
        "TYPE": "Bridge",
        "BOOTPROTO": "static",
        "MACADDR": "52:54:00:ab:cd:ef",
        "IPADDR0": "198.18.5.10",
        "PREFIX0": "24",
        "IPADDR1": "198.18.6.10",
        "PREFIX1": "23",
        "GATEWAY": "198.18.5.1",
        "DNS1": "198.18.5.1",
        "DNS2": "2001:db8::53",
        "USERCTL": "no",
        "PEERDNS": "yes",
        "PEERNTP": "no",
        "STP": "yes",
        "DELAY": "2",
        "BRIDGING_OPTS": "priority=32768 hairpin_mode=1 multicast_snooping=0",
        "NAME": "VM net",
        "MTU": "9000",
        "IPV6INIT": "yes",
        "OLD": None,
    }
    assert req.purge
    assert _ifcfg_codec.escape(req.desired["BRIDGING_OPTS"]) == '"priority=32768 hairpin_mode=1 multicast_snooping=0"'


@pytest.mark.parametrize("kind", sorted(_ifcfg.TYPES))
def test_types(kind):
    assert request(device="x0", type=kind).desired["TYPE"] == _ifcfg.TYPES[kind]


def test_single_address_uses_unnumbered_keys_and_owns_the_family():
    req = request(device="br0", bootproto="static", addresses=["198.18.5.10/24"], dns=["198.18.5.1"])
    assert req.desired["IPADDR"] == "198.18.5.10"
    assert req.desired["PREFIX"] == "24"
    before = "DEVICE=br0\nIPADDR0=198.18.9.9\nPREFIX0=16\nNETMASK=255.255.0.0\nDNS1=198.18.9.1\nDNS2=198.18.9.2\nMTU=1500\n"
    plan, _warnings = _ifcfg.plan(before, req)
    assert plan.after == "DEVICE=br0\nDNS1=198.18.5.1\nMTU=1500\nBOOTPROTO=static\nIPADDR=198.18.5.10\nPREFIX=24\n"
    assert sorted(plan.changed_keys) == ["BOOTPROTO", "DNS1", "DNS2", "IPADDR", "IPADDR0", "NETMASK", "PREFIX", "PREFIX0"]


def test_stale_ip_keys_on_a_port_are_reported():
    req = request(device="eth0", bridge="breth0", bootproto="none")
    plan, warnings = _ifcfg.plan("DEVICE=eth0\nBOOTPROTO=dhcp\nIPADDR=198.18.5.10\nPREFIX=24\n", req)
    assert plan.values["IPADDR"] == "198.18.5.10"
    assert len(warnings) == 1
    assert "IPADDR, PREFIX" in warnings[0]
    assert "ignores IP settings on a bridge port" in warnings[0]


def test_absent_needs_only_the_device():
    req = request(device="eth0", state="absent", addresses=["not an address"])
    assert req.desired == {}


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ("", "must be a non-empty string"),
        ("a" * 16, "longer than 15"),
        ("\u00e9" * 8, "longer than 15"),
        ("eth/0", "contains '/'"),
        ("../../etc/passwd", "contains '/'"),
        ("..", r"is '\.' or '\.\.'"),
        (".", r"is '\.' or '\.\.'"),
        ("eth0:1", "contains ':'"),
        ("eth 0", "white space"),
        ("eth0\n", "white space"),
        ("eth\x000", "NUL"),
        ("eth\x01", "control character"),
        # issue 13 item 11: what bridge and tap refuse, ifcfg refuses too
        ("br%d", "contains '%'"),
        ("all", "reserved name"),
        ("default", "reserved name"),
        ("bonding_masters", "reserved name"),
    ],
)
def test_bad_device(device, match):
    rejects(match, device=device)


def test_good_device_names():
    for name in ("a" * 15, "eth0.100", "br-lan", "vnet_0", "\u00e9th0"):
        assert request(device=name).desired["DEVICE"] == name


def test_bridge_named_after_itself():
    rejects("names the device itself", device="br0", bridge="br0")


def test_bad_bridge_name():
    rejects("bridge '../x' is not a valid interface name", device="eth0", bridge="../x")


def test_bridge_cannot_be_a_port():
    rejects("does not nest bridges", device="br1", type="bridge", bridge="br0")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"addresses": ["198.18.5.10/24"]}, "addresses"),
        ({"gateway": "198.18.5.1"}, "gateway"),
        ({"dns": ["198.18.5.1"]}, "dns"),
        ({"bootproto": "dhcp"}, "bootproto: dhcp"),
        ({"bootproto": "static", "addresses": ["198.18.5.10/24"]}, "bootproto: static"),
        ({"settings": {"IPADDR": "198.18.5.10"}}, "settings.IPADDR"),
        ({"settings": {"DNS1": "198.18.5.1"}}, "settings.DNS1"),
        ({"settings": {"IPV6ADDR": "2001:db8::1/64"}}, "settings.IPV6ADDR"),
    ],
)
def test_ip_settings_on_a_bridge_port(params, named):
    with pytest.raises(ModuleError) as info:
        request(device="eth0", bridge="breth0", **params)
    assert "initscripts ignores IP settings on a bridge port" in info.value.msg
    assert named in info.value.msg


def test_port_may_remove_ip_keys():
    assert request(device="eth0", bridge="br0", settings={"IPADDR": None}).desired["IPADDR"] is None


@pytest.mark.parametrize("key", ["1ABC", "A-B", "A B", "", "A=B", "A\n", "\u00c4"])
def test_bad_key_name(key):
    rejects("not a valid key name", device="eth0", settings={key: "x"})


@pytest.mark.parametrize("key", ["PATH", "IFS", "LD_PRELOAD", "BASH_ENV", "BASHOPTS", "SHELLOPTS", "PS4", "UID", "LC_ALL", "ENV"])
def test_shell_keys_are_refused(key):
    rejects("shell or loader variable", device="eth0", settings={key: "x"})


def test_settings_cannot_shadow_options():
    rejects("written from an option", device="eth0", settings={"DEVICE": "eth1"})
    rejects("written from an option", device="eth0", onboot=True, settings={"ONBOOT": "no"})
    rejects("addresses option manages all IPADDR", device="eth0", addresses=["198.18.5.10/24"], settings={"IPADDR1": "198.18.5.11"})
    rejects("dns option manages all DNS", device="eth0", dns=[], settings={"DNS3": "198.18.5.11"})
    # without the option, settings may write the key
    assert request(device="eth0", settings={"ONBOOT": "no"}).desired["ONBOOT"] == "no"


def test_nul_and_bad_values():
    rejects("NUL byte", device="eth0", settings={"NAME": "a\x00b"})
    rejects("not valid Unicode", device="eth0", settings={"NAME": "\ud800"})
    rejects("give a string, number or boolean", device="eth0", settings={"NAME": ["a"]})
    rejects("give a string, number or boolean", device="eth0", settings={"NAME": {"a": 1}})


@pytest.mark.parametrize(
    "mac", ["52:54:00:12:34", "52:54:00:12:34:56:78", "52-54-00-12-34-56", "5254.0012.3456", "52:54:00:12:34:5g", "", "52:54:00:12:34:56 "]
)
def test_malformed_mac(mac):
    rejects("is not a MAC address", device="eth0", hwaddr=mac)
    rejects("is not a MAC address", device="eth0", macaddr=mac)


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff", "53:54:00:12:34:56"])
def test_multicast_mac(mac):
    rejects("multicast", device="eth0", hwaddr=mac)
    rejects("multicast", device="eth0", macaddr=mac)


def test_zero_mac():
    rejects("all-zero", device="eth0", hwaddr="00:00:00:00:00:00")


@pytest.mark.parametrize(
    ("address", "match"),
    [
        ("198.18.5.10", "with a prefix length"),
        ("198.18.5.10/", "with a prefix length"),
        ("198.18.5.10/33", "prefix length 33"),
        ("198.18.5.10/0", "prefix length 0"),
        ("198.18.5.256/24", "not a valid IPv4"),
        ("198.018.5.10/24", "not a valid IPv4"),
        ("2001:db8::1/64", "IPv6 address; addresses takes IPv4 only"),
        ("198.18.5.0/24", "network address"),
        ("198.18.5.255/24", "broadcast address"),
        ("224.0.0.1/24", "cannot be an interface address"),
        ("0.0.0.0/8", "cannot be an interface address"),
        ("127.0.0.1/8", "cannot be an interface address"),
        ("198.18.5.10/255.255.255.0", "with a prefix length"),
    ],
)
def test_bad_address(address, match):
    rejects(match, device="eth0", addresses=[address])


def test_point_to_point_prefixes_are_fine():
    assert request(device="eth0", addresses=["198.18.5.0/31"]).desired["PREFIX"] == "31"
    assert request(device="eth0", addresses=["198.18.5.7/32"]).desired["PREFIX"] == "32"


def test_duplicate_address():
    rejects("same address twice", device="eth0", addresses=["198.18.5.10/24", "198.18.5.10/25"])


def test_static_needs_an_address():
    rejects("bootproto: static needs an address", device="br0", bootproto="static")
    rejects("bootproto: static needs an address", device="br0", bootproto="static", addresses=[])
    assert request(device="br0", bootproto="static", settings={"IPADDR": "198.18.5.10", "PREFIX": 24}).desired["IPADDR"] == "198.18.5.10"


def test_gateway_and_dns():
    rejects("gateway 'x' is not an IPv4 address", device="br0", gateway="x")
    rejects("cannot be a gateway", device="br0", gateway="224.0.0.1")
    rejects("dns: 'x' is not an IP address", device="br0", dns=["x"])
    req = request(device="br0", addresses=["198.18.5.10/24"], gateway="198.18.9.1")
    assert "not in the subnet" in req.warnings[0]


def test_bridge_only_options():
    rejects("stp applies to a bridge", device="eth0", bridge="br0", stp=False)
    rejects("delay applies to a bridge", device="eth0", type="ethernet", delay=0)
    rejects("0 or more seconds", device="br0", type="bridge", delay=-1)
    rejects("2 to 30 seconds", device="br0", type="bridge", stp=True, delay=0)
    assert request(device="br0", stp=False, delay=0).desired["STP"] == "no"  # type not managed: allowed


def test_bridging_opts():
    assert request(device="eth0", bridge="br0", bridging_opts={"path_cost": 100}).desired["BRIDGING_OPTS"] == "path_cost=100"
    assert request(device="br0", bridging_opts={}).desired["BRIDGING_OPTS"] is None
    rejects("not a bridge option name", device="br0", bridging_opts={"../../x": 1})
    rejects("not a bridge option name", device="br0", bridging_opts={"Priority": 1})
    rejects("not a valid value", device="br0", bridging_opts={"priority": "1 2"})
    rejects("not a valid value", device="br0", bridging_opts={"priority": "*"})
    rejects("not a valid value", device="br0", bridging_opts={"priority": "a=b"})
    rejects("not a valid value", device="br0", bridging_opts={"priority": ""})

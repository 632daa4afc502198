"""nm_keyfile's planner: random profiles are written, read back as asked, stable on a second plan, and libnm agrees."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.kvmhost.bridging.plugins.module_utils import _keyfile, _keyfile_plan
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nm_keyfile_oracle.py")
UUID = "5f7b6c1e-2f1a-4f55-9a57-3e1d2c0b9a10"

_NAME = st.text(st.characters(codec="utf-8", exclude_characters="/\x00\x7f", min_codepoint=0x20), min_size=1, max_size=20).filter(
    lambda name: name.strip() and not name.startswith(".") and not name.endswith("~")
)
_IFACE = st.from_regex(r"[a-z][a-z0-9]{0,9}", fullmatch=True)
_MAC = st.tuples(*[st.integers(0, 255)] * 6).map(lambda o: ":".join("%02X" % b for b in ((o[0] & 0xFE) | 0x02, *o[1:])))
_V4 = st.tuples(st.integers(1, 254), st.integers(2, 29)).map(lambda t: "198.18.%d.%d/%d" % (t[0] % 250, t[0], 24))
_SETTING_VALUE = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12).filter(lambda v: v.lstrip(" \t")[:1] not in ("\v", "\f"))


@st.composite
def params(draw):
    kind = draw(st.sampled_from(["bridge", "ethernet", "port"]))
    result = {"name": draw(_NAME), "type": "bridge" if kind == "bridge" else "ethernet", "interface": draw(_IFACE)}
    if kind == "port":
        result["controller"] = "br" + result["interface"][:8] + "x"
    else:
        method = draw(st.sampled_from(["auto", "manual", "disabled", "link-local"]))
        ipv4 = {"method": method}
        if method in ("auto", "manual"):
            addresses = draw(st.lists(_V4, min_size=1 if method == "manual" else 0, max_size=3, unique=True))
            ipv4["addresses"] = addresses
            if addresses and draw(st.booleans()):
                ipv4["gateway"] = "198.18.250.1"
        ipv4["dns"] = draw(st.lists(st.sampled_from(["198.18.0.53", "198.18.1.53", "2001:db8::53"]), max_size=2, unique=True))
        ipv4["dns"] = [server for server in ipv4["dns"] if ":" not in server] if method in ("auto", "manual") else []
        result["ipv4"] = ipv4
    if kind == "bridge":
        stp = draw(st.booleans())
        result["stp"] = stp
        result["forward_delay"] = draw(st.integers(2, 30) if stp else st.sampled_from([0, 2, 15, 30]))
        result["cloned_mac_address"] = draw(_MAC)
    elif draw(st.booleans()):
        result["mac_address"] = draw(_MAC)
    if draw(st.booleans()):
        result["autoconnect"] = draw(st.booleans())
    result["settings"] = {"user": {"org.example.note": draw(_SETTING_VALUE)}}
    return result


def check_profile(profile, args):
    assert profile["loads"] and profile["problems"] == []
    assert (profile["id"], profile["type"], profile["interface_name"]) == (args["name"], args["type"], args["interface"])
    assert profile["controller"] == args.get("controller")
    assert profile["port_type"] == ("bridge" if args.get("controller") else None)
    assert profile["autoconnect"] == args.get("autoconnect", True)
    if "ipv4" in args:
        ipv4 = args["ipv4"]
        assert profile["ipv4"]["method"] == ipv4["method"]
        assert profile["ipv4"]["addresses"] == ipv4.get("addresses", [])
        assert profile["ipv4"]["gateway"] == ipv4.get("gateway")
        assert profile["ipv4"]["dns"] == ipv4["dns"]
    if args["type"] == "bridge":
        assert profile["bridge"] == {"stp": args["stp"], "forward_delay": args["forward_delay"]}
        assert profile["cloned_mac_address"] == args["cloned_mac_address"]
    assert profile["mac_address"] == args.get("mac_address")
    assert profile["settings"]["user"]["org.example.note"] == args["settings"]["user"]["org.example.note"]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(params())
def test_written_profile_reads_back_as_asked_and_replans_to_nothing(args):
    request = _keyfile_plan.build_request(args)
    plan = _keyfile_plan.plan({}, request, UUID)
    assert plan.file_name == _keyfile.file_name_for(args["name"])
    check_profile(_keyfile.read_profile(plan.after, plan.file_name), args)
    again = _keyfile_plan.plan({plan.file_name: plan.after}, _keyfile_plan.build_request(args), "ffffffff-0000-4000-8000-000000000000")
    assert again.changes == [] and again.after == plan.after


def test_libnm_reads_random_profiles_as_the_planner_meant(tmp_path):
    examples = []

    @settings(max_examples=60, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(params())
    def collect(args):
        examples.append(args)

    collect()
    paths = []
    for index, args in enumerate(examples):
        plan = _keyfile_plan.plan({}, _keyfile_plan.build_request(args), UUID)
        path = tmp_path / ("%d.nmconnection" % index)
        path.write_text(plan.after)
        paths.append(str(path))
    out = subprocess.run(["/usr/bin/python3", ORACLE, *paths], capture_output=True, text=True, check=True).stdout
    read = json.loads(out)
    for path, args in zip(paths, examples):
        nm = read[path]
        assert "error" not in nm, (args, nm)
        assert (nm["id"], nm["uuid"], nm["interface_name"]) == (args["name"], UUID, args["interface"])
        assert nm["controller"] == args.get("controller")  # master= is what NetworkManager 1.42 reads
        if "ipv4" in args:
            assert nm["ipv4"]["method"] == args["ipv4"]["method"]
            assert nm["ipv4"]["addresses"] == args["ipv4"].get("addresses", [])
            assert nm["ipv4"]["gateway"] == args["ipv4"].get("gateway")
        if args["type"] == "bridge":
            assert nm["bridge"] == {"stp": args["stp"], "forward_delay": args["forward_delay"]}
            assert nm["cloned_mac_address"] == args["cloned_mac_address"]


def test_dns_on_a_disabled_family_is_refused_also_when_it_is_already_in_the_file():
    with pytest.raises(ModuleError, match="refuses DNS servers with method disabled"):
        _keyfile_plan.build_request({"name": "b", "type": "bridge", "interface": "b", "ipv4": {"method": "disabled", "dns": ["198.18.0.53"]}})
    existing = "[connection]\nid=b\ntype=bridge\ninterface-name=b\n\n[ipv4]\nmethod=auto\ndns=198.18.0.53;\n"
    request = _keyfile_plan.build_request({"name": "b", "type": "bridge", "interface": "b", "ipv4": {"method": "disabled"}})
    with pytest.raises(ModuleError, match="remove them with dns"):
        _keyfile_plan.plan({"b.nmconnection": existing}, request, UUID)


def test_id_and_uuid_of_an_existing_profile_stay():
    existing = "[connection]\nid=System eth0\nuuid=%s\ntype=ethernet\ninterface-name=eth0\n" % UUID
    request = _keyfile_plan.build_request({"name": "port", "type": "ethernet", "interface": "eth0", "controller": "br0"})
    plan = _keyfile_plan.plan({"ifcfg-like": existing}, request, "ffffffff-0000-4000-8000-000000000000")
    assert plan.adopted and plan.file_name == "ifcfg-like"
    assert (plan.profile["id"], plan.profile["uuid"]) == ("System eth0", UUID)


def test_explicit_uuid_replaces_the_existing_one():
    existing = "[connection]\nid=br0\nuuid=%s\ntype=bridge\ninterface-name=br0\n" % UUID
    other = "0bef2d09-50a3-56b9-912a-5dc941284e3e"
    request = _keyfile_plan.build_request({"name": "br0", "type": "bridge", "interface": "br0", "uuid": other.upper()})
    plan = _keyfile_plan.plan({"br0.nmconnection": existing}, request, "x")
    assert plan.profile["uuid"] == other
    assert [change.label for change in plan.changes] == ["connection.uuid"]


def test_same_id_twice_is_an_error():
    text = "[connection]\nid=br0\ntype=bridge\ninterface-name=br0\n"
    request = _keyfile_plan.build_request({"name": "br0", "type": "bridge", "interface": "br0"})
    with pytest.raises(ModuleError, match="Several files"):
        _keyfile_plan.plan({"a.nmconnection": text, "b.nmconnection": text}, request, UUID)


def test_ignored_files_are_not_profiles():
    text = "[connection]\nid=br0\ntype=bridge\ninterface-name=br0\nuuid=%s\n" % UUID
    request = _keyfile_plan.build_request({"name": "br0", "type": "bridge", "interface": "br0"})
    plan = _keyfile_plan.plan({"br0.nmconnection~": text, ".br0.nmconnection.tmp": text}, request, UUID)
    assert plan.before is None and plan.file_name == "br0.nmconnection"


def test_another_bridge_profile_of_the_interface_is_reported_not_adopted():
    other = "[connection]\nid=bridge-br0\nuuid=%s\ntype=bridge\ninterface-name=br0\n" % UUID
    request = _keyfile_plan.build_request({"name": "br0", "type": "bridge", "interface": "br0"})
    plan = _keyfile_plan.plan({"bridge-br0.nmconnection": other}, request, "0bef2d09-50a3-56b9-912a-5dc941284e3e")
    assert not plan.adopted and plan.before is None and plan.file_name == "br0.nmconnection"
    assert plan.others == ["bridge-br0.nmconnection"]

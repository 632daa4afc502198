"""_names: the one interface-name and MAC validator, and each caller's extra rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kvmhost.bridging.plugins.module_utils import _names
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError


@pytest.mark.parametrize("name", ["eth0", "br0", "a", "b" * 15, "br-lan.10", "virbr0-nic", "vnet_0", "\u00e9th0", "lo", "..."])
def test_kernel_names_are_accepted(name):
    assert _names.ifname_problem(name) is None
    assert _names.validate_ifname(name, "port") == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "must be a non-empty string"),
        (None, "must be a non-empty string"),
        (42, "must be a non-empty string"),
        ("b" * 16, "longer than 15 bytes"),
        ("\u00e9" * 8, "longer than 15 bytes"),  # 8 characters, 16 bytes: the kernel counts bytes
        ("br/0", "contains '/'"),
        ("br:0", "contains ':'"),
        ("br%d", "contains '%'"),
        ("br 0", "white space"),
        ("br\t0", "white space"),
        ("br0\n", "white space"),
        ("br0\r", "white space"),
        ("br\u00a00", "white space"),
        ("br\x000", "NUL byte"),
        ("br\x7f", "control characters"),
        ("br\x01", "control characters"),
        ("br\x85", "white space"),
        (".", "reserved name"),
        ("..", "reserved name"),
        ("all", "reserved name"),
        ("default", "reserved name"),
        ("bonding_masters", "reserved name"),
        ("br\udc80", "not valid Unicode"),
    ],
)
def test_names_the_kernel_or_proc_cannot_take_are_refused(name, why):
    problem = _names.ifname_problem(name, "bridge")
    assert why in problem
    assert problem.startswith("bridge ")
    with pytest.raises(ModuleError) as info:
        _names.validate_ifname(name, "bridge")
    assert info.value.msg == problem


def test_ascii_only_is_the_callers_extra_rule():
    assert _names.ifname_problem("vn\u00e9t0") is None
    assert "non-ASCII" in _names.ifname_problem("vn\u00e9t0", "tap name", ascii_only=True)


def test_every_reason_is_named_at_once():
    problem = _names.ifname_problem("a/b:c%d e" + "x" * 10)
    for reason in ("longer than 15", "'/'", "':'", "'%'", "white space"):
        assert reason in problem


@given(st.text(max_size=20))
def test_an_accepted_name_obeys_every_kernel_rule(name):
    if _names.ifname_problem(name) is not None:
        return
    raw = name.encode("utf-8")
    assert 1 <= len(raw) <= 15
    assert name not in (".", "..", "all", "default", "bonding_masters")
    assert not set("/:%\0") & set(name)
    assert not any(byte in b" \t\n\v\f\r" for byte in raw)
    assert all(ord(char) >= 0x20 and ord(char) != 0x7F for char in name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("52:54:00:12:34:56", "52:54:00:12:34:56"),
        ("52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"),
        ("52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef"),
        (" 02:00:00:00:00:01 ", "02:00:00:00:00:01"),
        ("fe:54:00:00:00:01", "fe:54:00:00:00:01"),
    ],
)
def test_macs_are_normalised(value, expected):
    assert _names.normalize_mac(value) == expected
    assert _names.mac_problem(value) == (expected, None)


@pytest.mark.parametrize(
    "value",
    ["52:54:00:12:34", "52:54:00:12:34:56:78", "52:54-00:12:34:56", "5254.0012.3456", "525400123456", "52:54:00:12:34:5g", "", None, 42],
)
def test_malformed_macs_are_refused(value):
    mac, problem = _names.mac_problem(value, "hwaddr")
    assert mac is None
    assert "hwaddr %r is not a MAC address" % (value,) in problem
    assert "six hexadecimal octets" in problem


@pytest.mark.parametrize("value", ["01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff", "53:54:00:12:34:56"])
def test_multicast_macs_are_refused_with_the_kernels_reason(value):
    with pytest.raises(ModuleError) as info:
        _names.normalize_mac(value, "mac", hint="Or leave it out.")
    assert "multicast" in info.value.msg
    assert "cannot assign requested address" in info.value.msg
    assert "52:54:00:%s" % value[9:] in info.value.msg
    assert info.value.msg.endswith("Or leave it out.")


def test_the_zero_mac_is_refused():
    problem = _names.mac_problem("00:00:00:00:00:00")[1]
    assert "all-zero" in problem
    assert "not a valid station address" in problem


def test_separators_and_strip_are_the_callers_rules():
    assert _names.mac_problem("52-54-00-12-34-56", separators=":")[0] is None
    assert _names.mac_problem(" 52:54:00:12:34:56", strip=False)[0] is None
    assert _names.normalize_mac("52:54:00:12:34:56", separators=":", strip=False) == "52:54:00:12:34:56"


def test_mac_classification():
    assert _names.parse_mac("52:54:00:12:34:56") == bytes((0x52, 0x54, 0, 0x12, 0x34, 0x56))
    assert _names.parse_mac("52:54:00:12:34") is None
    assert _names.is_multicast(_names.parse_mac("01:00:5e:00:00:01"))
    assert not _names.is_multicast(_names.parse_mac("52:54:00:00:00:01"))
    assert _names.is_locally_administered(_names.parse_mac("52:54:00:00:00:01"))
    assert not _names.is_locally_administered(_names.parse_mac("00:16:3e:00:00:01"))


@given(st.binary(min_size=6, max_size=6))
def test_every_unicast_nonzero_mac_round_trips(octets):
    text = _names.format_mac(octets)
    mac, problem = _names.mac_problem(text.upper().replace(":", "-"))
    if octets[0] & 1 or not any(octets):
        assert mac is None and problem
    else:
        assert (mac, problem) == (text, None)

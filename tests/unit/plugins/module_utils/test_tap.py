"""Taps: validation, desired state, planning against hand-built dumps, bulk apply with a fake IPRoute."""

from __future__ import annotations

import os

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from ansible_collections.kvmhost.bridging.plugins.module_utils import _rtnl, _tap
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

PARAMS = {
    "name": None,
    "taps": None,
    "state": "present",
    "bridge": None,
    "owner": None,
    "group": None,
    "multi_queue": None,
    "vnet_hdr": None,
    "mac": None,
    "mtu": None,
    "up": None,
}


def params(**kwargs):
    return dict(PARAMS, **kwargs)


def link(index, name, kind=None, master=None, mac="52:54:00:00:00:%02x", mtu=1500, up=True, carrier=False, group=0, **extra):
    rec = {
        "index": index,
        "name": name,
        "kind": kind,
        "slave_kind": None,
        "master": master,
        "mac": mac % index if "%" in mac else mac,
        "mtu": mtu,
        "up": up,
        "carrier": carrier,
        "operstate": "up" if up and carrier else "down",
        "group": group,
        "tun": None,
        "br": None,
        "brport": None,
    }
    rec.update(extra)
    return rec


def tap(index, name, master=None, owner=None, group=None, multi_queue=False, vnet_hdr=True, tun_type=2, num_queues=0, **kwargs):
    tun = {
        "type": tun_type,
        "pi": False,
        "vnet_hdr": vnet_hdr,
        "multi_queue": multi_queue,
        "persist": True,
        "owner": owner,
        "group": group,
        "num_queues": num_queues,
        "num_disabled_queues": 0,
    }
    rec = link(index, name, kind="tun", master=master, tun=tun, **kwargs)
    if master:
        rec["slave_kind"] = "bridge"
        rec["brport"] = {"state": 3}
    return rec


def bridge(index, name):
    return link(index, name, kind="bridge", br={"stp_state": 0, "forward_delay": 1500, "priority": 32768, "id_addr": None})


LINKS = [link(1, "lo", mac="00:00:00:00:00:00", mtu=65536), link(2, "eth0"), bridge(3, "breth0"), bridge(4, "virbr0")]


def plan(links, **kwargs):
    return _tap.plan_taps(_tap.build_desired(params(**kwargs)), links)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("name", ["vnet0", "tap-web01.0", "a", "x" * 15, "v_1"])
def test_good_names(name):
    assert _tap.ifname_problem(name, ascii_only=True) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "must be a non-empty string"),
        ("x" * 16, "it is longer than 15 bytes"),
        ("vnet/0", "it contains '/'"),
        ("vnet:0", "it contains ':'"),
        ("vnet%d", "it contains '%'"),
        ("vnet 0", "it contains white space"),
        ("vnet\t0", "it contains white space"),
        (".", "reserved name"),
        ("..", "reserved name"),
        ("all", "it is a reserved name"),
        ("vnét0", "non-ASCII"),
        (None, "must be a non-empty string"),
    ],
)
def test_bad_names(name, why):
    assert why in _tap.ifname_problem(name, ascii_only=True)


@pytest.mark.parametrize(
    ("given", "norm"),
    [("52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"), ("52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef"), (" 02:00:00:00:00:01 ", "02:00:00:00:00:01")],
)
def test_mac_normalized(given, norm):
    assert _tap.mac_problem(given) == (norm, None)


def test_multicast_mac_explains_kernel_refusal_and_suggests_kvm_range():
    mac, problem = _tap.mac_problem("11:22:33:44:55:66")
    assert mac is None
    assert "multicast" in problem
    assert "cannot assign requested address" in problem
    assert "52:54:00:xx:xx:xx" in problem
    assert "52:54:00:44:55:66" in problem


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01"])
def test_other_multicast_macs(mac):
    assert "multicast" in _tap.mac_problem(mac)[1]


@pytest.mark.parametrize("mac", ["52:54:00:ab:cd", "52:54:00:ab:cd:ef:01", "52:54:00:ab:cd:eg", "525400abcdef", "", 42])
def test_malformed_macs(mac):
    assert "is not a MAC address" in _tap.mac_problem(mac)[1]


def test_zero_mac():
    assert "not a valid station address" in _tap.mac_problem("00:00:00:00:00:00")[1]


def test_resolve_ids():
    assert _tap.resolve_id(None, "owner") == (None, None)
    assert _tap.resolve_id("107", "owner") == (107, None)
    assert _tap.resolve_id(0, "group") == (0, None)
    assert _tap.resolve_id("root", "owner") == (0, None)
    assert _tap.resolve_id("root", "group") == (0, None)
    assert "no such user" in _tap.resolve_id("no-such-user-kvmb", "owner")[1]
    assert "no such group" in _tap.resolve_id("no-such-group-kvmb", "group")[1]
    assert "out of range" in _tap.resolve_id(str(2**32), "owner")[1]
    assert "name or a number" in _tap.resolve_id(True, "owner")[1]


# ------------------------------------------------------------ desired state


def test_top_level_options_are_defaults_of_taps():
    desired = _tap.build_desired(
        params(taps=[{"name": "vnet0"}, {"name": "vnet1", "bridge": "virbr0", "up": False}, {"name": "vnet2", "state": "absent"}], bridge="breth0", owner="0")
    )
    assert desired[0] == {
        "name": "vnet0",
        "state": "present",
        "bridge": "breth0",
        "owner": 0,
        "group": None,
        "mac": None,
        "mtu": None,
        "multi_queue": None,
        "vnet_hdr": None,
        "up": None,
    }
    assert desired[1]["bridge"] == "virbr0"
    assert desired[1]["up"] is False
    assert desired[2] == {"name": "vnet2", "state": "absent"}


def test_every_problem_is_reported_at_once():
    with pytest.raises(ModuleError) as info:
        _tap.build_desired(
            params(
                taps=[
                    {"name": "vnet0", "mac": "11:22:33:44:55:66"},
                    {"name": "way-too-long-name0"},
                    {"name": "vnet2", "owner": "no-such-user-kvmb"},
                    {"name": "vnet3", "mtu": 20},
                    {"name": "vnet0"},
                ]
            )
        )
    problems = info.value.result["problems"]
    assert len(problems) == 5
    assert problems[0].startswith("taps[0]: vnet0: mac 11:22:33:44:55:66 is a multicast address")
    assert problems[1].startswith("taps[1]: way-too-long-name0: tap name 'way-too-long-name0' is not a valid interface name: it is longer than 15 bytes")
    assert "no such user" in problems[2]
    assert "mtu 20 is out of range" in problems[3]
    assert "listed twice" in problems[4]
    assert "; " in info.value.msg


def test_top_level_mac_with_many_taps_is_refused():
    with pytest.raises(ModuleError, match="every tap would get the same MAC"):
        _tap.build_desired(params(taps=[{"name": "a"}, {"name": "b"}], mac="52:54:00:00:00:01"))


def test_same_mac_twice_is_refused():
    with pytest.raises(ModuleError, match="also given to a"):
        _tap.build_desired(params(taps=[{"name": "a", "mac": "52:54:00:00:00:01"}, {"name": "b", "mac": "52:54:00:00:00:01"}]))


def test_bad_bridge_name_and_own_bridge():
    with pytest.raises(ModuleError, match="bridge name 'br/0' is not a valid interface name"):
        _tap.build_desired(params(name="vnet0", bridge="br/0"))
    with pytest.raises(ModuleError, match="cannot be its own bridge"):
        _tap.build_desired(params(name="vnet0", bridge="vnet0"))


def test_empty_taps_is_nothing_to_do():
    result = _tap.run(params(taps=[]), False, None, dump=LINKS)
    assert result == {"changed": False, "actions": [], "diff": {"before": {"taps": {}}, "after": {"taps": {}}}, "taps": []}


# ---------------------------------------------------------- link records


def test_held_by_queues_even_without_carrier():
    assert _tap.is_held(tap(9, "vnet9", multi_queue=True, num_queues=2))
    assert not _tap.is_held(tap(9, "vnet9"))


# ------------------------------------------------------------------ planning


def test_create_with_defaults():
    p = plan(LINKS, name="vnet0", bridge="breth0")
    assert p.actions() == [
        {
            "action": "create",
            "name": "vnet0",
            "after": {"bridge": "breth0", "owner": None, "group": None, "multi_queue": False, "vnet_hdr": True, "mac": None, "mtu": 1500, "up": True},
        }
    ]
    assert p.steps[0].netlink == {"bridge": "breth0", "up": True}
    assert p.diff() == {"before": {"taps": {}}, "after": {"taps": {"vnet0": p.steps[0].after}}}
    assert p.taps == [dict(p.steps[0].after, name="vnet0")]


def test_create_with_everything_set():
    p = plan(LINKS, name="vnet0", bridge="breth0", owner="107", group="0", multi_queue=True, vnet_hdr=False, mac="52:54:00:AB:CD:EF", mtu=9000, up=False)
    assert p.steps[0].after == {
        "bridge": "breth0",
        "owner": 107,
        "group": 0,
        "multi_queue": True,
        "vnet_hdr": False,
        "mac": "52:54:00:ab:cd:ef",
        "mtu": 9000,
        "up": False,
    }
    assert p.steps[0].netlink == {"mac": "52:54:00:ab:cd:ef", "mtu": 9000, "bridge": "breth0"}


def test_existing_tap_matching_is_no_change():
    links = [*LINKS, tap(10, "vnet0", master=3, owner=107, mac="52:54:00:ab:cd:ef")]
    p = plan(links, name="vnet0", bridge="breth0", owner="107", vnet_hdr=True, multi_queue=False, mac="52:54:00:AB:CD:EF", mtu=1500, up=True)
    assert not p.changed
    assert p.actions() == []
    assert p.taps[0]["bridge"] == "breth0"


def test_unset_options_keep_what_exists():
    links = [*LINKS, tap(10, "vnet0", master=4, owner=5, group=6, vnet_hdr=False, mtu=1400, up=False)]
    p = plan(links, name="vnet0")
    assert not p.changed
    assert p.taps[0] == {
        "name": "vnet0",
        "bridge": "virbr0",
        "owner": 5,
        "group": 6,
        "multi_queue": False,
        "vnet_hdr": False,
        "mac": "52:54:00:00:00:0a",
        "mtu": 1400,
        "up": False,
    }


def test_netlink_changes_are_updates_in_place_even_when_held():
    links = [*LINKS, tap(10, "vnet0", master=3, carrier=True)]
    p = plan(links, name="vnet0", bridge="virbr0", mtu=9000, mac="52:54:00:00:00:99", up=False)
    assert not p.blocked
    assert p.actions() == [
        {
            "action": "update",
            "name": "vnet0",
            "changes": {
                "bridge": {"before": "breth0", "after": "virbr0"},
                "mac": {"before": "52:54:00:00:00:0a", "after": "52:54:00:00:00:99"},
                "mtu": {"before": 1500, "after": 9000},
                "up": {"before": True, "after": False},
            },
        }
    ]
    assert p.steps[0].netlink == {"bridge": "virbr0", "mac": "52:54:00:00:00:99", "mtu": 9000, "up": False}


def test_empty_bridge_takes_the_tap_off():
    p = plan([*LINKS, tap(10, "vnet0", master=3)], name="vnet0", bridge="")
    assert p.steps[0].netlink == {"bridge": None}
    assert plan([*LINKS, tap(10, "vnet0")], name="vnet0", bridge="").changed is False


def test_owner_group_vnet_hdr_change_by_attaching():
    p = plan([*LINKS, tap(10, "vnet0", owner=5)], name="vnet0", owner="107", group="0", vnet_hdr=False)
    assert p.steps[0].action == "update"
    assert p.steps[0].changes == ["owner", "group", "vnet_hdr"]
    assert p.steps[0].netlink == {}
    assert not p.blocked


def test_multi_queue_change_recreates_and_keeps_everything_else():
    links = [*LINKS, tap(10, "vnet0", master=3, owner=107, mtu=9000, mac="52:54:00:12:34:56")]
    p = plan(links, name="vnet0", multi_queue=True)
    step = p.steps[0]
    assert step.action == "recreate"
    assert step.changes == ["multi_queue"]
    assert step.after == {
        "bridge": "breth0",
        "owner": 107,
        "group": None,
        "multi_queue": True,
        "vnet_hdr": True,
        "mac": "52:54:00:12:34:56",
        "mtu": 9000,
        "up": True,
    }
    assert step.netlink == {"mac": "52:54:00:12:34:56", "mtu": 9000, "bridge": "breth0", "up": True}


@pytest.mark.parametrize("change", [{"multi_queue": True}, {"owner": "107"}, {"vnet_hdr": False}, {"group": "0"}])
def test_offline_changes_of_a_held_tap_are_blocked(change):
    p = plan([*LINKS, tap(10, "vnet0", carrier=True)], name="vnet0", **change)
    assert [(name, keys) for name, keys, _rec in p.blocked] == [("vnet0", list(change))]


def test_blocked_message_names_the_process_and_guest():
    p = plan([*LINKS, tap(10, "vnet0", carrier=True)], name="vnet0", multi_queue=True, owner="107")
    holders = {"vnet0": [{"pid": 4242, "cmdline": "/usr/bin/qemu-system-x86_64 -name guest=web01,debug-threads=on", "guest": "web01"}]}
    msg = _tap.blocked_message(p.blocked, holders)
    assert msg.startswith("vnet0: owner and multi_queue cannot change in place (it needs recreating the tap)")
    assert "pid 4242 (/usr/bin/qemu-system-x86_64 -name guest=web01" in msg
    assert "of guest web01" in msg
    assert "Stop that process" in msg
    assert "does not show" in _tap.blocked_message(p.blocked, {})


def test_run_fails_on_blocked_change_with_holder(monkeypatch):
    monkeypatch.setattr(_tap, "find_tap_holders", lambda names: {"vnet0": [{"pid": 7, "cmdline": "qemu -name web01", "guest": "web01"}]})
    with pytest.raises(ModuleError, match=r"held by pid 7 .* of guest web01") as info:
        _tap.run(params(name="vnet0", vnet_hdr=False), True, None, dump=[*LINKS, tap(10, "vnet0", carrier=True)])
    assert info.value.result["changed"] is False


def test_absent():
    links = [*LINKS, tap(10, "vnet0", master=3, carrier=True), tap(11, "vnet1")]
    p = plan(links, taps=[{"name": "vnet0"}, {"name": "vnet1"}, {"name": "vnet2"}], state="absent")
    assert [(a["action"], a["name"], a["held"]) for a in p.actions()] == [("delete", "vnet0", True), ("delete", "vnet1", False)]
    assert p.diff()["after"] == {"taps": {}}
    assert set(p.diff()["before"]["taps"]) == {"vnet0", "vnet1"}
    assert p.taps == []


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize(("name", "what"), [("eth0", "a physical or kernel device"), ("breth0", "a bridge device")])
def test_names_that_are_not_taps_are_never_touched(state, name, what):
    with pytest.raises(ModuleError, match="%s exists and is %s, not a tap" % (name, what)):
        plan(LINKS, name=name, state=state)


def test_a_tun_is_not_a_tap():
    with pytest.raises(ModuleError, match="a tun \\(layer 3\\) device, not a tap"):
        plan([*LINKS, tap(10, "tun0", tun_type=1)], name="tun0", state="absent")


def test_missing_bridge():
    with pytest.raises(ModuleError, match=r"vnet0: bridge br9 does not exist; create it first .* Existing bridges: breth0, virbr0"):
        plan(LINKS, name="vnet0", bridge="br9")


def test_bridge_that_is_not_a_bridge():
    with pytest.raises(ModuleError, match="eth0 is a physical or kernel device, not a bridge"):
        plan(LINKS, name="vnet0", bridge="eth0")


def test_plan_problems_are_collected():
    with pytest.raises(ModuleError) as info:
        plan(LINKS, taps=[{"name": "vnet0", "bridge": "nope"}, {"name": "eth0"}, {"name": "vnet2", "bridge": "breth0"}])
    assert len(info.value.result["problems"]) == 2


def test_check_mode_result_from_a_dump():
    result = _tap.run(params(name="vnet0", bridge="breth0", mac="52:54:00:00:00:01"), True, None, dump=LINKS)
    assert result["changed"] is True
    assert result["actions"][0]["action"] == "create"
    assert result["taps"][0]["mac"] == "52:54:00:00:00:01"


def test_thousand_taps_plan_is_one_pass():
    links = list(LINKS) + [tap(100 + i, "vnet%d" % i, master=3) for i in range(1000)]
    p = plan(links, taps=[{"name": "vnet%d" % i} for i in range(1000)], bridge="breth0")
    assert not p.changed
    assert len(p.taps) == 1000


# ----------------------------------------------------------------- holders


@pytest.mark.parametrize(
    ("argv", "guest"),
    [
        (["/usr/libexec/qemu-kvm", "-name", "guest=web01,debug-threads=on", "-m", "1024"], "web01"),
        (["qemu-system-x86_64", "-name", "web01"], "web01"),
        (["qemu-system-x86_64", "-name", "web01,process=qemu-web01"], "web01"),
        (["qemu-system-x86_64", "--name", "debug-threads=on,guest=db,,1"], "db,1"),
        (["qemu-system-x86_64", "-name=web02"], "web02"),
        (["qemu-system-x86_64", "-m", "1024"], None),
        (["qemu-system-x86_64", "-name"], None),
        (["qemu-system-x86_64", "-name", "process=x"], None),
        ([], None),
    ],
)
def test_guest_name(argv, guest):
    assert _tap.guest_name(argv) == guest


def _fake_proc(tmp_path, pid, fds, argv):
    base = tmp_path / str(pid)
    (base / "fd").mkdir(parents=True)
    (base / "fdinfo").mkdir()
    for fd, (target, iff) in fds.items():
        os.symlink(target, str(base / "fd" / str(fd)))
        info = "pos:\t0\nflags:\t02\n" + ("iff:\t%s\n" % iff if iff else "")
        (base / "fdinfo" / str(fd)).write_text(info)
    (base / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def test_find_tap_holders_in_this_netns_only(tmp_path):
    _fake_proc(tmp_path, 100, {3: ("/dev/net/tun", "vnet0"), 4: ("/dev/net/tun", "vnet0"), 5: ("/dev/null", None)}, ["qemu", "-name", "guest=web01"])
    _fake_proc(tmp_path, 200, {7: ("/dev/net/tun", "vnet0")}, ["qemu", "-name", "other-netns"])
    _fake_proc(tmp_path, 300, {3: ("/dev/net/tun", "vnet1")}, ["helper"])
    _fake_proc(tmp_path, 400, {3: ("/dev/net/tun", "vnet9")}, ["unasked"])
    (tmp_path / "self").mkdir()
    netns = {100: "here", 200: "there", 300: "here", 400: "here"}
    found = _tap.find_tap_holders(["vnet0", "vnet1"], proc=str(tmp_path), netns_of=lambda pid, fd: netns[pid], own_netns="here")
    assert found == {
        "vnet0": [{"pid": 100, "cmdline": "qemu -name guest=web01", "guest": "web01"}],
        "vnet1": [{"pid": 300, "cmdline": "helper", "guest": None}],
    }
    everything = _tap.find_tap_holders(None, proc=str(tmp_path), netns_of=lambda pid, fd: netns[pid], own_netns="here")
    assert set(everything) == {"vnet0", "vnet1", "vnet9"}


def test_find_tap_holders_for_real_sees_no_stranger():
    # This process holds no tap: whatever the machine runs, none is ours.
    assert _tap.find_tap_holders(["kvmb-no-such-tap"]) == {}


# --------------------------------------------------------------------- apply


class FakeIP:
    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail

    def link(self, command, **kwargs):
        self.calls.append((command, kwargs))
        if self.fail and self.fail(command, kwargs):
            raise NetlinkError(22, "Invalid argument")


def _apply(links, monkeypatch, ip=None, **kwargs):
    attached = []

    def fake_attach(name, after, owner, group):
        attached.append((name, after["multi_queue"], after["vnet_hdr"], owner, group))
        return "fe:00:00:00:00:01"

    monkeypatch.setattr(_tap, "_tun_attach", fake_attach)
    monkeypatch.setattr(_tap.socket, "if_nametoindex", lambda name: 500)
    p = plan(links, **kwargs)
    ip = ip or FakeIP()
    _tap.apply_plan(ip, p, links)
    return p, ip, attached


def test_apply_deletes_many_taps_as_one_link_group(monkeypatch):
    links = [*LINKS, *(tap(10 + i, "vnet%d" % i, master=3) for i in range(5))]
    links[1]["group"] = _tap.DELETE_GROUP_BASE  # taken: the next one is used
    _p, ip, attached = _apply(links, monkeypatch, taps=[{"name": "vnet%d" % i} for i in range(5)], state="absent")
    group = _tap.DELETE_GROUP_BASE + 1
    assert ip.calls == [("set", {"index": 10 + i, "group": group}) for i in range(5)] + [("del", {"group": group})]
    assert attached == []


def test_apply_deletes_one_tap_by_index(monkeypatch):
    _p, ip, _attached = _apply([*LINKS, tap(10, "vnet0")], monkeypatch, name="vnet0", state="absent")
    assert ip.calls == [("del", {"index": 10})]


def test_apply_falls_back_to_one_by_one_without_group_deletion(monkeypatch):
    links = [*LINKS, tap(10, "vnet0"), tap(11, "vnet1")]
    ip = FakeIP(fail=lambda command, kwargs: command == "del" and "group" in kwargs)
    _apply(links, monkeypatch, ip=ip, taps=[{"name": "vnet0"}, {"name": "vnet1"}], state="absent")
    assert ip.calls[-2:] == [("del", {"index": 10}), ("del", {"index": 11})]


def test_apply_create_update_recreate(monkeypatch):
    links = [*LINKS, tap(10, "vnet0", master=3), tap(11, "vnet1", mtu=1400), tap(12, "vnet2", owner=5)]
    p, ip, attached = _apply(
        links,
        monkeypatch,
        taps=[
            {"name": "vnet0", "multi_queue": True},
            {"name": "vnet1", "mtu": 9000, "bridge": "virbr0"},
            {"name": "vnet2", "owner": "107"},
            {"name": "vnet3", "bridge": "breth0"},
        ],
    )
    assert attached == [("vnet0", True, True, None, None), ("vnet2", False, True, 107, None), ("vnet3", False, True, None, None)]
    assert ip.calls == [
        ("del", {"index": 10}),
        ("set", {"index": 500, "address": "52:54:00:00:00:0a", "master": 3, "state": "up"}),
        ("set", {"index": 11, "mtu": 9000, "master": 4}),
        ("set", {"index": 500, "master": 3, "state": "up"}),
    ]
    # the MAC of the new tap is the kernel's, read back from the tun fd
    assert p.taps[-1]["mac"] == "fe:00:00:00:00:01"
    assert p.actions()[-1]["after"]["mac"] == "fe:00:00:00:00:01"


def test_apply_failure_says_where(monkeypatch):
    links = [*LINKS, tap(10, "vnet0")]
    factory = CountingFactory()
    factory.ip = FakeIP(fail=lambda command, kwargs: "mtu" in kwargs)
    monkeypatch.setattr(_tap, "_tun_attach", lambda *a: None)
    with pytest.raises(ModuleError, match=r"vnet0: setting mtu failed: Invalid argument \(errno 22\). Changes made before") as info:
        _tap.run(params(name="vnet0", mtu=9000), False, factory, reader=lambda: links)
    assert info.value.result["changed"] is True


def test_ioctl_numbers():
    x86 = _tap._ioctl_numbers("x86_64")
    assert (x86["TUNSETIFF"], x86["TUNSETPERSIST"], x86["TUNSETOWNER"], x86["TUNSETGROUP"]) == (0x400454CA, 0x400454CB, 0x400454CC, 0x400454CE)
    assert _tap._ioctl_numbers("ppc64le")["TUNSETIFF"] == 0x800454CA
    assert x86["TUNGETDEVNETNS"] == 0x54E3


# ------------------------------------------------ reading without pyroute2


class CountingFactory:
    """An ip_factory that records how often the task opened a pyroute2 session."""

    def __init__(self):
        self.opened = 0
        self.ip = FakeIP()

    def __call__(self):
        self.opened += 1
        factory = self

        class Session:
            def __enter__(self):
                return factory.ip

            def __exit__(self, *exc):
                return False

        return Session()


def test_nothing_to_do_never_opens_a_pyroute2_session():
    factory = CountingFactory()
    links = [*LINKS, tap(10, "vnet0", master=3)]
    result = _tap.run(params(name="vnet0", bridge="breth0"), False, factory, reader=lambda: links)
    assert not result["changed"]
    assert factory.opened == 0


def test_check_mode_reads_but_never_opens_a_pyroute2_session():
    factory = CountingFactory()
    links = [*LINKS, tap(10, "vnet0")]
    result = _tap.run(params(name="vnet0", bridge="breth0"), True, factory, reader=lambda: links)
    assert result["changed"]
    assert factory.opened == 0
    assert factory.ip.calls == []


def test_a_change_opens_one_session_for_the_whole_plan(monkeypatch):
    factory = CountingFactory()
    links = [*LINKS, tap(10, "vnet0"), tap(11, "vnet1")]
    monkeypatch.setattr(_tap, "_tun_attach", lambda *a: None)
    taps = [{"name": "vnet0", "bridge": "breth0"}, {"name": "vnet1", "bridge": "breth0"}]
    result = _tap.run(params(taps=taps), False, factory, reader=lambda: links)
    assert result["changed"]
    assert factory.opened == 1
    assert [call[1]["index"] for call in factory.ip.calls] == [10, 11]


def test_a_failed_read_is_a_clear_error():
    def broken():
        raise _rtnl.RtnlError(13, "Permission denied")

    with pytest.raises(ModuleError, match="reading the links over netlink failed"):
        _tap.run(params(name="vnet0"), False, CountingFactory(), reader=broken)

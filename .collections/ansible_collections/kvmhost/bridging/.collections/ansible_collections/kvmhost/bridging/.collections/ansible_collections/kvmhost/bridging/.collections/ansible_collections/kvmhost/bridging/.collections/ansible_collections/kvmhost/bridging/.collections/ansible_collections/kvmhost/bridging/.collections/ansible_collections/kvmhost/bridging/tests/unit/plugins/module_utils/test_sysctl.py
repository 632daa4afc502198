"""Forwarding sysctls: key spelling, systemd-sysctl precedence, the drop-in, override fixes, the run against a fake root."""

from __future__ import annotations

import os

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _sysctl as sc
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

OURS = "/etc/sysctl.d/90-kvmhost-bridging.conf"
IPV4 = sc.KEY_IPV4


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("net.ipv4.ip_forward", "net/ipv4/ip_forward"),
        ("net/ipv4/ip_forward", "net/ipv4/ip_forward"),
        ("  net.ipv4.ip_forward ", "net/ipv4/ip_forward"),
        ("net.ipv4.conf.enp3s0/200.forwarding", "net/ipv4/conf/enp3s0.200/forwarding"),
        ("net/ipv4/conf/enp3s0.200/forwarding", "net/ipv4/conf/enp3s0.200/forwarding"),
        ("kernel", "kernel"),
    ],
)
def test_key_path(name, path):
    assert sc.key_path(name) == path


def test_key_name_round_trip():
    assert sc.key_name(sc.key_path("net.ipv4.conf.enp3s0/200.forwarding")) == "net.ipv4.conf.enp3s0/200.forwarding"


@pytest.mark.parametrize(("left", "right", "same"), [("1", " 1\n", True), ("01", "1", True), ("1", "0", False), ("a b", "a  b", True), (None, "0", False)])
def test_same_value(left, right, same):
    assert sc.same_value(left, right) is same


def test_desired_values():
    assert sc.desired_values({"ipv4": True, "ipv6": None, "bridge_nf_call": False}) == {
        IPV4: "1",
        "net.bridge.bridge-nf-call-iptables": "0",
        "net.bridge.bridge-nf-call-ip6tables": "0",
        "net.bridge.bridge-nf-call-arptables": "0",
    }


def test_parse_conf():
    text = "# c\n; c\n\nnet.ipv4.ip_forward=1\n -net/ipv4/ip_forward = 0 \nnet.ipv6.conf.*.forwarding = 1\n-net.ipv6.conf.all.forwarding\nbogus line\n"
    items = sc.parse_conf("f", text)
    assert [(i.index, i.key, i.value, i.glob) for i in items] == [
        (3, "net/ipv4/ip_forward", "1", False),
        (4, "net/ipv4/ip_forward", "0", False),
        (5, "net/ipv6/conf/*/forwarding", "1", True),
        (6, "net/ipv6/conf/all/forwarding", None, False),
    ]


def test_config_order_masking_and_lexical_order():
    listing = {
        "/etc/sysctl.d": ["50-x.conf", "README", "99-z.conf"],
        "/run/sysctl.d": ["50-x.conf", "60-run.conf"],
        "/usr/lib/sysctl.d": ["10-vendor.conf", "50-x.conf", "99-z.conf"],
        "/lib/sysctl.d": ["70-lib.conf"],
    }
    assert sc.config_order(listing) == [
        "/usr/lib/sysctl.d/10-vendor.conf",
        "/etc/sysctl.d/50-x.conf",
        "/run/sysctl.d/60-run.conf",
        "/lib/sysctl.d/70-lib.conf",
        "/etc/sysctl.d/99-z.conf",
        "/etc/sysctl.conf",
    ]
    assert sc.config_order({}, sysctl_conf_exists=False) == []


def _parsed(files):
    return {path: sc.parse_conf(path, text) for path, text in files.items()}


def test_boot_value_later_wins_and_explicit_beats_glob():
    files = {
        "/a.conf": "net.ipv6.conf.all.forwarding = 1\n",
        "/b.conf": "net.ipv6.conf.*.forwarding = 0\n",
    }
    value, source = sc.boot_value(list(files), _parsed(files), "net/ipv6/conf/all/forwarding")
    assert (value, source.path) == ("1", "/a.conf")
    files["/c.conf"] = "net.ipv6.conf.all.forwarding = 0\n"
    value, source = sc.boot_value(list(files), _parsed(files), "net/ipv6/conf/all/forwarding")
    assert (value, source.path) == ("0", "/c.conf")


def test_boot_value_glob_and_exclusion():
    files = {"/a.conf": "net.ipv6.conf.*.forwarding = 1\n"}
    assert sc.boot_value(list(files), _parsed(files), "net/ipv6/conf/all/forwarding")[0] == "1"
    files["/b.conf"] = "-net.ipv6.conf.all.forwarding\n"
    assert sc.boot_value(list(files), _parsed(files), "net/ipv6/conf/all/forwarding") == (None, None)
    assert sc.boot_value([], {}, "net/ipv4/ip_forward") == (None, None)


def test_render_drop_in_new_and_in_place():
    assert sc.render_drop_in(None, {IPV4: "1"}) == sc.HEADER + "net.ipv4.ip_forward = 1\n"
    existing = "# mine\nnet.ipv4.ip_forward=0  \nvm.swappiness = 10\nnet/ipv4/ip_forward = 0"
    assert sc.render_drop_in(existing, {IPV4: "1", sc.KEY_IPV6: "1"}) == (
        "# mine\nnet.ipv4.ip_forward= 1  \nvm.swappiness = 10\nnet/ipv4/ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"
    )
    same = "net.ipv4.ip_forward = 1\n"
    assert sc.render_drop_in(same, {IPV4: "1"}) == same


def test_comment_out_is_marked_and_not_doubled():
    text = "a = 1\nnet.ipv4.ip_forward = 0\n"
    once = sc.comment_out(text, [1])
    assert once == "a = 1\n" + sc.DISABLED_PREFIX + "net.ipv4.ip_forward = 0\n"
    assert sc.comment_out(once, [1]) == once


# -- planning --------------------------------------------------------------------------


def state(files, runtime=None, realpaths=None):
    listing = {}
    for path in files:
        directory, name = os.path.split(path)
        if directory in sc.SEARCH_DIRS:
            listing.setdefault(directory, []).append(name)
    contents = dict(files)
    contents.setdefault(sc.SYSCTL_CONF, None)
    return sc.State(
        runtime if runtime is not None else {IPV4: "0"},
        listing,
        contents,
        realpaths,
        sysctl_conf_exists=contents[sc.SYSCTL_CONF] is not None,
    )


def test_plan_fresh_host():
    result = sc.plan(state({}), {IPV4: "1"}, OURS)
    assert result.runtime_writes == [(IPV4, "1")]
    assert result.writes == {OURS: (None, sc.HEADER + "net.ipv4.ip_forward = 1\n")}
    assert result.persistent[IPV4] == {"before": None, "after": "1", "source": OURS}
    assert result.overridden_by == {}
    assert result.warnings == []


def test_plan_idempotent():
    files = {OURS: sc.HEADER + "net.ipv4.ip_forward = 1\n"}
    result = sc.plan(state(files, {IPV4: "1"}), {IPV4: "1"}, OURS)
    assert not result.changed
    assert result.persistent[IPV4] == {"before": "1", "after": "1", "source": OURS}


def test_plan_later_file_overrides_and_warns():
    files = {"/etc/sysctl.d/99-local.conf": "# local\nnet.ipv4.ip_forward = 0\n"}
    result = sc.plan(state(files), {IPV4: "1"}, OURS)
    assert result.overridden_by == {IPV4: "/etc/sysctl.d/99-local.conf"}
    assert result.persistent[IPV4]["after"] == "0"
    assert len(result.warnings) == 1
    assert "/etc/sysctl.d/99-local.conf line 2" in result.warnings[0] and "fix_overrides" in result.warnings[0]
    assert "/etc/sysctl.d/99-local.conf" not in result.writes


def test_plan_earlier_file_and_same_value_are_no_conflict():
    files = {
        "/etc/sysctl.d/10-early.conf": "net.ipv4.ip_forward = 0\n",
        "/etc/sysctl.d/99-late.conf": "net.ipv4.ip_forward = 1\n",
    }
    result = sc.plan(state(files), {IPV4: "1"}, OURS)
    assert result.overridden_by == {}
    assert result.persistent[IPV4] == {"before": "1", "after": "1", "source": "/etc/sysctl.d/99-late.conf"}


def test_plan_sysctl_conf_is_last():
    files = {sc.SYSCTL_CONF: "net.ipv4.ip_forward = 0\n"}
    result = sc.plan(state(files), {IPV4: "1"}, OURS)
    assert result.overridden_by == {IPV4: sc.SYSCTL_CONF}


def test_plan_fix_overrides_in_etc_in_place():
    late = "/etc/sysctl.d/99-local.conf"
    files = {late: "vm.swappiness = 10\nnet.ipv4.ip_forward = 0\nnet.ipv4.ip_forward=0\n"}
    result = sc.plan(state(files), {IPV4: "1"}, OURS, fix_overrides=True)
    assert result.overridden_by == {}
    assert result.warnings == []
    assert result.writes[late] == (
        files[late],
        "vm.swappiness = 10\n" + sc.DISABLED_PREFIX + "net.ipv4.ip_forward = 0\n" + sc.DISABLED_PREFIX + "net.ipv4.ip_forward=0\n",
    )
    assert [(f["path"], f["written"], f["line"]) for f in result.fixed] == [(late, late, 2), (late, late, 3)]
    assert result.persistent[IPV4]["source"] == OURS


def test_plan_fix_overrides_vendor_file_gets_an_etc_copy():
    vendor = "/usr/lib/sysctl.d/99-vendor.conf"
    files = {vendor: "kernel.x = 1\nnet.ipv4.ip_forward = 0\n"}
    result = sc.plan(state(files), {IPV4: "1"}, OURS, fix_overrides=True)
    copy = "/etc/sysctl.d/99-vendor.conf"
    assert vendor not in result.writes
    assert result.writes[copy] == (None, "kernel.x = 1\n" + sc.DISABLED_PREFIX + "net.ipv4.ip_forward = 0\n")
    assert result.overridden_by == {}


def test_plan_fix_overrides_through_symlink_edits_the_target_once():
    link = "/etc/sysctl.d/99-sysctl.conf"
    text = "net.ipv4.ip_forward = 0\n"
    files = {link: text, sc.SYSCTL_CONF: text}
    result = sc.plan(state(files, realpaths={link: sc.SYSCTL_CONF}), {IPV4: "1"}, OURS, fix_overrides=True)
    assert set(result.writes) == {OURS, sc.SYSCTL_CONF}
    assert result.writes[sc.SYSCTL_CONF] == (text, sc.DISABLED_PREFIX + text)
    assert result.overridden_by == {}


def test_plan_masked_or_unread_file_warns():
    masking = "/etc/sysctl.d/90-x.conf"
    result = sc.plan(state({masking: "# empty\n"}), {IPV4: "1"}, "/usr/lib/sysctl.d/90-x.conf")
    assert result.overridden_by == {IPV4: masking}
    assert "masked by" in result.warnings[0]
    result = sc.plan(state({}), {IPV4: "1"}, "/opt/x.conf")
    assert "not in a directory systemd-sysctl reads" in result.warnings[0]
    assert result.overridden_by == {IPV4: None}


def test_plan_persist_false_only_runtime():
    result = sc.plan(state({"/etc/sysctl.d/99-local.conf": "net.ipv4.ip_forward = 0\n"}), {IPV4: "1"}, OURS, persist=False)
    assert result.writes == {}
    assert result.runtime_writes == [(IPV4, "1")]
    assert result.overridden_by == {}
    assert result.persistent[IPV4] == {"before": "0", "after": "0", "source": "/etc/sysctl.d/99-local.conf"}


def test_plan_absent_sysctls():
    desired = sc.desired_values({"ipv4": None, "ipv6": None, "bridge_nf_call": True})
    runtime = dict.fromkeys(desired)
    with pytest.raises(ModuleError, match=r"br_netfilter module is not loaded.*Nothing was changed"):
        sc.plan(state({}, runtime), desired, OURS)
    desired = sc.desired_values({"ipv4": None, "ipv6": False, "bridge_nf_call": False})
    result = sc.plan(state({}, dict.fromkeys(desired)), desired, OURS)
    assert result.runtime_writes == []
    assert all(value == {"before": None, "after": None} for value in result.runtime.values())
    assert len(result.warnings) == 4
    assert "IPv6 is disabled" in result.warnings[0]
    assert OURS in result.writes  # still persisted for when the sysctls exist


# -- the whole run against a fake root ----------------------------------------------------


class FakeModule:
    def __init__(self, root, check_mode=False, diff=False, **params):
        base = {"ipv4": True, "ipv6": None, "bridge_nf_call": None, "persist": True, "sysctl_file": OURS, "fix_overrides": False}
        base.update(params)
        self.params = base
        self.check_mode = check_mode
        self._diff = diff
        self.root = root

    def atomic_move(self, src, dest, unsafe_writes=False):
        os.rename(src, dest)


@pytest.fixture
def root(tmp_path):
    for key, value in ((IPV4, "0"), (sc.KEY_IPV6, "0")):
        path = tmp_path / sc.PROC_SYS.lstrip("/") / sc.key_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    (tmp_path / "etc" / "sysctl.d").mkdir(parents=True)
    return tmp_path


def _read(root, path):
    return (root / path.lstrip("/")).read_text()


def test_run_writes_runtime_and_drop_in_then_is_idempotent(root):
    result = sc.run(FakeModule(root, ipv6=True, diff=True), root=str(root))
    assert result["changed"] is True
    assert _read(root, "/proc/sys/net/ipv4/ip_forward") == "1\n"
    assert _read(root, "/proc/sys/net/ipv6/conf/all/forwarding") == "1\n"
    assert _read(root, OURS) == sc.HEADER + "net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"
    assert oct((root / OURS.lstrip("/")).stat().st_mode & 0o777) == "0o644"
    assert result["runtime"][IPV4] == {"before": "0", "after": "1"}
    assert result["diff"][0]["before"] == "net.ipv4.ip_forward = 0\nnet.ipv6.conf.all.forwarding = 0\n"
    assert result["diff"][1]["before_header"].endswith("(absent)")
    again = sc.run(FakeModule(root, ipv6=True), root=str(root))
    assert again["changed"] is False


def test_run_check_mode_writes_nothing(root):
    (root / "etc/sysctl.d/99-local.conf").write_text("net.ipv4.ip_forward = 0\n")
    result = sc.run(FakeModule(root, check_mode=True, fix_overrides=True), root=str(root))
    assert result["changed"] is True
    assert result["fixed_overrides"][0]["path"] == "/etc/sysctl.d/99-local.conf"
    assert _read(root, "/proc/sys/net/ipv4/ip_forward") == "0\n"
    assert not (root / OURS.lstrip("/")).exists()
    assert _read(root, "/etc/sysctl.d/99-local.conf") == "net.ipv4.ip_forward = 0\n"


def test_run_fix_overrides(root):
    (root / "etc/sysctl.d/99-local.conf").write_text("net.ipv4.ip_forward = 0\n")
    result = sc.run(FakeModule(root, fix_overrides=True), root=str(root))
    assert _read(root, "/etc/sysctl.d/99-local.conf") == sc.DISABLED_PREFIX + "net.ipv4.ip_forward = 0\n"
    assert result["overridden_by"] == {}
    assert result["persistent"][IPV4] == {"before": "0", "after": "1", "source": OURS}


def test_run_creates_missing_directory(root):
    target = "/etc/sysctl.d/sub/x.conf"
    sc.run(FakeModule(root, sysctl_file=target), root=str(root))
    assert _read(root, target).endswith("net.ipv4.ip_forward = 1\n")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fix_overrides": True, "persist": False}, "fix_overrides needs persist"),
        ({"sysctl_file": "relative.conf"}, "absolute path ending in .conf"),
        ({"sysctl_file": "/etc/sysctl.d/x.txt"}, "absolute path ending in .conf"),
        ({"ipv4": None}, "Nothing to do"),
        ({"bridge_nf_call": True}, "br_netfilter"),
    ],
)
def test_run_bad_input_changes_nothing(root, params, message):
    with pytest.raises(ModuleError, match=message):
        sc.run(FakeModule(root, **params), root=str(root))
    assert _read(root, "/proc/sys/net/ipv4/ip_forward") == "0\n"
    assert not (root / OURS.lstrip("/")).exists()

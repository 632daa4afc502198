"""Regression tests of issue 13 (hardening), one group per defect, in process against module_utils."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import resource
import signal
import subprocess

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _bridge_plan as bp
from ansible_collections.kvmhost.bridging.plugins.module_utils import _fileio, _firewalld_plan, _guard, _guard_state, _ifcfg, _ifcfg_codec, _nm, _nm_bridge
from ansible_collections.kvmhost.bridging.plugins.module_utils import _firewall as fw
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks
from ansible_collections.kvmhost.bridging.plugins.module_utils import _sysctl as sc
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

OURS = "/etc/sysctl.d/90-kvmhost-bridging.conf"
RULES = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n"
BINS = {"iptables", "iptables-nft-save", "iptables-nft-restore", "iptables-legacy-save", "iptables-legacy-restore"}


class SysctlModule:
    def __init__(self, **params):
        self.params = {"ipv4": True, "ipv6": None, "bridge_nf_call": None, "persist": True, "sysctl_file": OURS, "fix_overrides": False}
        self.params.update(params)
        self.check_mode = False
        self._diff = False

    def atomic_move(self, src, dest, unsafe_writes=False):  # what main's atomic_write called
        os.rename(src, dest)


class FirewallModule:
    def __init__(self, params, live=RULES, restore_rc=0):
        self.params = {
            "chain": "FORWARD",
            "table": "filter",
            "reject_with": "icmp-host-prohibited",
            "state": "absent",
            "accept_bridged": False,
            "persist": True,
            "rules_file": None,
            "rules_file_ipv6": "/etc/sysconfig/ip6tables",
            "ip_version": "ipv4",
        }
        self.params.update(params)
        self.check_mode = False
        self._diff = False
        self.live = live
        self.restore_rc = restore_rc
        self.restores = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/sbin/" + name if name in BINS else None

    def run_command(self, args, data=None, binary_data=False, **kwargs):
        name = os.path.basename(args[0])
        if name == "iptables-nft-save":
            return 0, self.live, ""
        if "restore" in name:
            self.restores.append(data)
            return self.restore_rc, "", "iptables-restore: line 2 failed" if self.restore_rc else ""
        return 0, "", ""

    def atomic_move(self, src, dest, unsafe_writes=False):
        os.rename(src, dest)


class GuardModule:
    def atomic_move(self, src, dest, unsafe_writes=False):
        os.replace(src, dest)


class NoRuntime(_guard.Runtime):
    def snapshot(self):
        return {}

    def restore(self, snapshot):
        return {"steps": [], "differences": []}


@pytest.fixture
def root(tmp_path):
    for key in (sc.KEY_IPV4, sc.KEY_IPV6):
        path = tmp_path / sc.PROC_SYS.lstrip("/") / sc.key_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("0\n")
    (tmp_path / "etc" / "sysctl.d").mkdir(parents=True)
    return tmp_path


def bridge_params():
    params = {
        "name": "breth0",
        "state": "present",
        "ports": ["eth0"],
        "ports_exclusive": False,
        "mac": "inherit",
        "migrate_addresses": True,
        "up": True,
        "force": False,
        "mtu": None,
    }
    params.update(dict.fromkeys(ks.BRIDGE_OPTION_NAMES))
    return params


@contextlib.contextmanager
def file_size_limit(limit):
    """RLIMIT_FSIZE for this process: a longer write fails with EFBIG (SIGXFSZ ignored), like ENOSPC or EDQUOT."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


# -- 2. a symbolic link is written through, never replaced ----------------------------------------


def test_sysctl_file_that_is_a_link_is_written_through(root):
    (root / "etc/sysctl.conf").write_text("# local\n")
    os.symlink("../sysctl.conf", root / "etc/sysctl.d/99-sysctl.conf")
    result = sc.run(SysctlModule(sysctl_file="/etc/sysctl.d/99-sysctl.conf"), root=str(root))
    assert result["changed"] is True
    assert os.readlink(root / "etc/sysctl.d/99-sysctl.conf") == "../sysctl.conf"
    assert "net.ipv4.ip_forward = 1" in (root / "etc/sysctl.conf").read_text()
    assert sc.run(SysctlModule(sysctl_file="/etc/sysctl.d/99-sysctl.conf"), root=str(root))["changed"] is False


def test_rules_file_that_is_a_link_is_written_through(tmp_path):
    (tmp_path / "saved").write_text(RULES)
    os.symlink("saved", tmp_path / "iptables")
    fw.run(FirewallModule({"rules_file": str(tmp_path / "iptables")}))
    assert os.readlink(tmp_path / "iptables") == "saved"
    assert "REJECT" not in (tmp_path / "saved").read_text()


def test_guard_restores_through_a_link_and_reports_what_it_did(tmp_path):
    etc = tmp_path / "etc"
    (etc / "sysctl.d").mkdir(parents=True)
    (etc / "sysctl.conf").write_text("net.ipv4.ip_forward = 0\n")
    link = etc / "sysctl.d/99-sysctl.conf"
    os.symlink("../sysctl.conf", link)
    guard = _guard.Guard(GuardModule(), _guard_state.Paths(str(tmp_path / "run"), "g1"), NoRuntime())
    guard.arm(60, [str(link)], "test", with_runtime=False)
    (etc / "sysctl.conf").write_text("net.ipv4.ip_forward = 1\n")
    result = guard.rollback("test")
    assert result["restored_files"] == [{"path": str(link), "action": "restored"}]
    assert os.readlink(link) == "../sysctl.conf"
    assert (etc / "sysctl.conf").read_text() == "net.ipv4.ip_forward = 0\n"


def test_a_dangling_link_is_refused_not_replaced(tmp_path):
    os.symlink("nowhere", tmp_path / "ifcfg-br0")
    with pytest.raises(ModuleError, match="symbolic link to nowhere"):
        _fileio.atomic_write(None, str(tmp_path / "ifcfg-br0"), b"DEVICE=br0\n")
    assert os.readlink(tmp_path / "ifcfg-br0") == "nowhere"


# -- 3. a failed file write is a clear failure that says what changed ------------------------------


def test_sysctl_write_failure_is_a_module_error_and_the_kernel_is_untouched(root):
    with file_size_limit(10), pytest.raises(ModuleError) as info:
        sc.run(SysctlModule(), root=str(root))
    assert "Cannot write" in info.value.msg and "File too large" in info.value.msg
    assert "changed" not in info.value.result
    assert (root / "proc/sys/net/ipv4/ip_forward").read_text() == "0\n"  # files first: nothing changed
    assert os.listdir(root / "etc/sysctl.d") == []


def test_sysctl_runtime_failure_after_the_file_reports_changed(root, monkeypatch):
    def refuse(key, value, root=""):
        raise ModuleError("Cannot set %s = %s: Read-only file system." % (key, value))

    monkeypatch.setattr(sc, "write_runtime", refuse)  # /proc/sys read-only, as in some containers
    with pytest.raises(ModuleError) as info:
        sc.run(SysctlModule(), root=str(root))
    assert info.value.result["changed"] is True
    assert "Already changed: %s" % OURS in info.value.msg
    assert "net.ipv4.ip_forward = 1" in (root / OURS.lstrip("/")).read_text()


def test_rules_file_write_failure_leaves_live_rules_alone(tmp_path):
    rules = tmp_path / "iptables"
    rules.write_text(RULES)
    module = FirewallModule({"rules_file": str(rules)})
    with file_size_limit(10), pytest.raises(ModuleError) as info:
        fw.run(module)
    assert "Cannot write %s" % rules in info.value.msg
    assert module.restores == []
    assert "changed" not in info.value.result


def test_live_failure_after_the_saved_file_reports_changed(tmp_path):
    rules = tmp_path / "iptables"
    rules.write_text(RULES)
    module = FirewallModule({"rules_file": str(rules)}, restore_rc=1)
    with pytest.raises(ModuleError) as info:
        fw.run(module)
    assert info.value.result["changed"] is True
    assert "Already changed: %s" % rules in info.value.msg


# -- 4. and 5. lines bash reads differently from NetworkManager -------------------------------------


@pytest.mark.parametrize("prefix", ["\v", "\f", "\r", " \v"])
def test_managed_key_behind_a_non_blank_prefix_is_rewritten(prefix):
    plan = _ifcfg.plan_rewrite("DEVICE=br0\n%sONBOOT=yes\n" % prefix, {"ONBOOT": "yes"})
    assert plan.changed
    assert plan.after == "DEVICE=br0\nONBOOT=yes\n"


def test_managed_key_behind_blanks_stays():
    plan = _ifcfg.plan_rewrite("DEVICE=br0\n \tONBOOT=yes\n", {"ONBOOT": "yes"})
    assert not plan.changed


def test_unmanaged_line_bash_would_execute_is_commented_out_with_a_warning(tmp_path):
    before = "DEVICE=br0\nEXTRA=`touch${IFS}%s/x`\nNAME=ok\n" % tmp_path
    request = _ifcfg.build_request({"device": "br0", "onboot": True, "config_dir": str(tmp_path)})
    plan, warnings = _ifcfg.plan(before, request)
    assert "#NM: EXTRA=`touch${IFS}%s/x`\n" % tmp_path in plan.after
    assert plan.commented == ["EXTRA=`touch${IFS}%s/x`" % tmp_path]
    assert any("commented out 1 line" in warning for warning in warnings)
    path = tmp_path / "ifcfg-br0"
    path.write_text(plan.after)
    out = subprocess.run(["env", "-i", "bash", "-c", 'set -a; . "$1"; printf %s "$NAME"', "_", str(path)], capture_output=True, check=True)
    assert out.stdout == b"ok"
    assert not (tmp_path / "x").exists()


# -- 6. sysctl_file is normalised; dot-files are refused and skipped ------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "/etc/sysctl.d/./90-kvmhost-bridging.conf",
        "/etc//sysctl.d/90-kvmhost-bridging.conf",
        "/etc/x/../sysctl.d/90-kvmhost-bridging.conf",
        "//etc/sysctl.d/90-kvmhost-bridging.conf",
    ],
)
def test_sysctl_file_is_normalised(root, given):
    result = sc.run(SysctlModule(sysctl_file=given), root=str(root))
    assert result["sysctl_file"] == OURS
    assert result["persistent"][sc.KEY_IPV4]["after"] == "1"
    assert result["warnings"] == []


def test_hidden_sysctl_file_is_refused(root):
    with pytest.raises(ModuleError, match="hidden file"):
        sc.run(SysctlModule(sysctl_file="/etc/sysctl.d/.90-kvm.conf"), root=str(root))


def test_hidden_drop_ins_are_not_read(root):
    (root / "etc/sysctl.d/.99-off.conf").write_text("net.ipv4.ip_forward = 0\n")
    result = sc.run(SysctlModule(), root=str(root))
    assert result["overridden_by"] == {}
    assert result["warnings"] == []


# -- 7. reads take regular files only, and a bounded amount -----------------------------------------


def _read_in_child(path, queue):
    try:
        if os.path.basename(path).startswith("ifcfg-"):
            _ifcfg_codec.read_files(os.path.dirname(path), [os.path.basename(path)[len("ifcfg-") :]], _fileio.read_bytes)
        else:
            _fileio.read_bytes(path)
        queue.put("read")
    except ModuleError as exc:
        queue.put(exc.msg)


def read_in_child(path):
    """What reading ``path`` says, from a child process: main's reader blocks on a FIFO forever."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(str(path), queue))
    child.start()
    child.join(60)  # a safety net, not a measurement
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the read blocked on a FIFO")
    return queue.get()


@pytest.mark.parametrize("name", ["rules", "ifcfg-br0"])  # read_bytes itself, and ifcfg_info's read_files
def test_a_fifo_is_refused_without_blocking(tmp_path, name):
    os.mkfifo(tmp_path / name)
    assert "is a FIFO, not a regular file" in read_in_child(tmp_path / name)


def test_a_device_is_refused(tmp_path):
    os.symlink("/dev/zero", tmp_path / "ifcfg-br0")
    with pytest.raises(ModuleError, match="is a character device, not a regular file"):
        _fileio.read_bytes(str(tmp_path / "ifcfg-br0"))


def test_the_read_is_capped(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 100)
    assert _fileio.read_bytes(str(tmp_path / "big"), max_size=100) == b"x" * 100
    with pytest.raises(ModuleError, match="more than the 99"):
        _fileio.read_bytes(str(tmp_path / "big"), max_size=99)


# -- 8. the guard's state directory must be the user's own -------------------------------------------


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o770, 0o775])
def test_a_state_dir_others_can_write_is_refused(tmp_path, mode):
    state_dir = tmp_path / "shared"
    state_dir.mkdir()
    os.chmod(state_dir, mode)
    with pytest.raises(ModuleError, match="not safe"):
        _guard_state.Paths(str(state_dir), "g1")


def test_a_state_dir_of_another_user_is_refused(tmp_path):
    state_dir = tmp_path / "theirs"
    state_dir.mkdir(mode=0o700)
    os.chown(state_dir, 4242, 4242)
    with pytest.raises(ModuleError, match="owned by uid 4242"):
        _guard_state.Paths(str(state_dir), "g1")


def test_a_state_dir_of_our_own_is_accepted(tmp_path):
    state_dir = tmp_path / "ours"
    state_dir.mkdir(mode=0o700)
    assert _guard_state.Paths(str(state_dir), "g1").dir == str(state_dir)


# -- 9. bridge timers must be finite ---------------------------------------------------------------


@pytest.mark.parametrize("option", ["forward_delay", "hello_time", "max_age", "ageing_time"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_bridge_refuses_non_finite_timers(option, value):
    params = bridge_params()
    params.update({"stp": False, option: value})
    with pytest.raises(ModuleError, match="%s %s is not a number of seconds" % (option, value)):
        bp.BridgeSpec.from_params(params)


# -- 10. guard timeout and start_within are bounded -------------------------------------------------


@pytest.mark.parametrize(("timeout", "start_within"), [(10**400, 0), (86401, 0), (60, 10**400), (60, 86401)])
def test_guard_refuses_unbounded_times(tmp_path, timeout, start_within):
    guard = _guard.Guard(GuardModule(), _guard_state.Paths(str(tmp_path / "run"), "g1"), NoRuntime())
    with pytest.raises(ModuleError, match="86400 seconds"):
        guard.arm(timeout, [], "test", with_runtime=False, start_within=start_within)
    assert not (tmp_path / "run").exists()


# -- 11. (the names are in test_names.py) the chain name and the guard id refuse a trailing newline --


def test_chain_name_with_a_trailing_newline_is_refused():
    with pytest.raises(ModuleError, match="Invalid chain name"):
        fw.validate_chain_name("FORWARD\n", "filter")


def test_guard_id_with_a_trailing_newline_is_refused(tmp_path):
    with pytest.raises(ModuleError):
        _guard_state.Paths(str(tmp_path), "g1\n")


# -- 12. the loader, resolver and interpreter variables are refused in settings ----------------------


@pytest.mark.parametrize("key", ["GLIBC_TUNABLES", "LOCPATH", "HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN", "TZDIR", "PERL5OPT", "TMOUT", "TZ", "NODE_OPTIONS"])
def test_loader_and_resolver_variables_are_refused(key):
    with pytest.raises(ModuleError, match="shell or loader variable"):
        _ifcfg.build_request({"device": "eth0", "settings": {key: "x"}})


# -- 13. a CRLF rules file stays CRLF -------------------------------------------------------------------


def test_crlf_rules_file_keeps_its_line_ending(tmp_path):
    rules = tmp_path / "iptables"
    rules.write_bytes(RULES.replace("-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n", "").replace("\n", "\r\n").encode())
    live = RULES.replace("-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n", "")
    fw.run(FirewallModule({"rules_file": str(rules), "state": "present"}, live=live))
    data = rules.read_bytes()
    assert b"-A FORWARD -j REJECT --reject-with icmp-host-prohibited\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


# -- sweeps of the same classes ---------------------------------------------------------------------


@pytest.mark.parametrize("wait", [-1, 86401, 10**400])
def test_guard_wait_is_bounded_too(wait):
    with pytest.raises(ModuleError, match="wait must be 0 to 86400 seconds"):
        _guard_state.check_seconds("wait", wait, 0)


def test_bridge_forward_delay_fits_the_kernels_u32():
    params = bridge_params()
    params.update({"stp": False, "forward_delay": 1e300})
    with pytest.raises(ModuleError, match="forward_delay must be at most 42949672 seconds"):
        bp.BridgeSpec.from_params(params)


def test_ifcfg_delay_fits_the_kernels_u32():
    with pytest.raises(ModuleError, match="at most 42949672"):
        _ifcfg.build_request({"device": "br0", "type": "bridge", "stp": False, "delay": 10**12})


def test_guard_interfaces_are_interface_names():
    with pytest.raises(ModuleError, match="is not a valid interface name"):
        _guard.NetlinkRuntime(["eth0", "br%d"])


def test_firewalld_zone_names_and_interfaces_are_checked_in_full():
    with pytest.raises(ModuleError, match="zone name"):
        _firewalld_plan.zone_wants([{"name": "libvirt\n"}])
    with pytest.raises(ModuleError, match="is not a valid interface name"):
        _firewalld_plan.zone_wants([{"name": "libvirt", "interfaces": ["eth0 --permanent"]}])
    assert _firewalld_plan.zone_wants([{"name": "libvirt", "interfaces": ["virbr0"]}])[0].interfaces == ("virbr0",)


class NoBus:
    """A bus that must not be asked: names are checked before anything is sent."""

    def __getattr__(self, name):
        raise AssertionError("the bus was used")


@pytest.mark.parametrize(
    "call",
    [
        lambda: _nm.Checkpoints(NoBus()).create(["eth0", "eth0\n"], 60, 0),
        lambda: _nm_bridge.plan({"devices": {}}, "all", "breth0"),
        lambda: _nm_bridge.plan({"devices": {}}, "eth0", "br%d"),
        lambda: _nm_bridge.activate(NoBus(), "breth0", "eth0/1"),
    ],
    ids=["checkpoint devices", "nic", "bridge", "activate interface"],
)
def test_networkmanager_names_go_through_the_one_validator(call):
    with pytest.raises(ModuleError, match="is not a valid interface name"):
        call()


def test_guard_file_removal_failure_is_a_module_error(tmp_path):
    (tmp_path / "guard-g1.decision").mkdir()  # unlink(2) of a directory fails with EISDIR
    with pytest.raises(ModuleError, match=r"Cannot remove .*guard-g1\.decision: Is a directory\. Make it removable"):
        _guard_state.unlink(str(tmp_path / "guard-g1.decision"))

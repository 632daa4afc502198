"""The guard: files saved and restored, one decision per arming, the watcher's outcomes, status."""

from __future__ import annotations

import json
import os
import threading

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _guard, _guard_state
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError


class FakeModule:
    """What _fileio.atomic_write needs of an AnsibleModule."""

    def atomic_move(self, src, dest, unsafe_writes=False):
        os.replace(src, dest)

    def backup_local(self, path):  # pragma: no cover - the guard never asks for backups
        raise AssertionError("no backups expected")


class FakeRuntime(_guard.Runtime):
    def __init__(self, fail=False):
        self.restored = []
        self.fail = fail

    def snapshot(self):
        return {"links": ["eth0"]}

    def restore(self, snapshot):
        if self.fail:
            raise RuntimeError("netlink said no")
        self.restored.append(snapshot)
        return {"steps": ["delete bridge breth0"], "differences": []}


class Clock:
    """A clock that advances only when the guard sleeps."""

    def __init__(self, start=1000.0):
        self.now = start
        self.on_sleep = None

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self)


@pytest.fixture
def env(tmp_path):
    state_dir = tmp_path / "run"
    etc = tmp_path / "etc"
    etc.mkdir()
    clock = Clock()
    runtime = FakeRuntime()
    paths = _guard_state.Paths(str(state_dir), "host-bridge-h1")
    guard = _guard.Guard(FakeModule(), paths, runtime, clock=clock, sleep=clock.sleep, poll=0.5)
    return guard, clock, runtime, etc


def _files(etc):
    existing = etc / "ifcfg-eth0"
    existing.write_text("DEVICE=eth0\nIPADDR=198.18.0.2\n")
    os.chmod(existing, 0o640)
    new = etc / "ifcfg-breth0"
    return existing, new


def _change(existing, new):
    existing.write_text("DEVICE=eth0\nBRIDGE=breth0\n")
    new.write_text("DEVICE=breth0\nTYPE=Bridge\n")


@pytest.mark.parametrize("guard_id", ["", "-x", "a/b", "a b", "../x", "x" * 129])
def test_bad_ids_are_refused(guard_id):
    with pytest.raises(ModuleError, match="Invalid guard id"):
        _guard_state.Paths("/run/x", guard_id)


def test_arm_saves_files_and_runtime(env):
    guard, _clock, _runtime, etc = env
    existing, new = _files(etc)
    result = guard.arm(60, [str(existing), str(new)], "bridging eth0 into breth0", True)
    assert result["armed"] and result["changed"] is False
    assert result["files"] == [{"path": str(existing), "exists": True}, {"path": str(new), "exists": False}]
    state = _guard_state.read_json(guard.paths.state)
    assert state["runtime"] == {"links": ["eth0"]}
    assert state["description"] == "bridging eth0 into breth0"
    assert oct(os.stat(guard.paths.state).st_mode & 0o777) == "0o600"
    assert oct(os.stat(guard.paths.dir).st_mode & 0o777) == "0o700"


def test_arm_in_check_mode_writes_nothing(env):
    guard, _clock, _runtime, etc = env
    existing, new = _files(etc)
    result = guard.arm(60, [str(existing), str(new)], "x", True, check_mode=True)
    assert result["armed"] is False
    assert not os.path.exists(guard.paths.state)


def test_arm_needs_absolute_paths(env):
    guard = env[0]
    with pytest.raises(ModuleError, match="absolute paths"):
        guard.arm(60, ["ifcfg-eth0"], "x", False)


def test_timeout_without_confirmation_restores_files_and_runtime(env):
    guard, clock, runtime, etc = env
    existing, new = _files(etc)
    guard.arm(60, [str(existing), str(new)], "bridging eth0 into breth0", True)
    _change(existing, new)
    result = guard.watch(pid=os.getpid())
    assert result["rolled_back"] is True and result["confirmed"] is False and result["changed"] is True
    assert result["decided_by"] == "watcher"
    assert result["reason"] == "no confirmation within 60s"
    assert "Rolled back bridging eth0 into breth0 (no confirmation within 60s)" in result["msg"]
    assert existing.read_text() == "DEVICE=eth0\nIPADDR=198.18.0.2\n"
    assert oct(os.stat(existing).st_mode & 0o777) == "0o640"
    assert not new.exists()
    assert runtime.restored == [{"links": ["eth0"]}]
    assert {item["path"]: item["action"] for item in result["restored_files"]} == {str(existing): "restored", str(new): "removed"}
    assert 60 <= clock.now - 1000.0 < 61
    # The state is gone and the outcome stays for late-comers.
    assert not os.path.exists(guard.paths.state)
    assert not os.path.exists(guard.paths.decision)
    assert _guard_state.read_json(guard.paths.result)["rolled_back"] is True


def test_removed_file_is_recreated_with_its_mode(env):
    guard, _clock, _runtime, etc = env
    existing, _new = _files(etc)
    guard.arm(5, [str(existing)], "x", False)
    existing.unlink()
    result = guard.watch(pid=os.getpid())
    assert result["restored_files"] == [{"path": str(existing), "action": "recreated"}]
    assert existing.read_text() == "DEVICE=eth0\nIPADDR=198.18.0.2\n"
    assert oct(os.stat(existing).st_mode & 0o777) == "0o640"


def test_confirmation_before_the_deadline_keeps_the_change(env):
    guard, clock, runtime, etc = env
    existing, new = _files(etc)
    guard.arm(60, [str(existing), str(new)], "bridging eth0 into breth0", True)
    _change(existing, new)
    confirmer = _guard.Guard(FakeModule(), guard.paths, runtime, clock=clock, sleep=clock.sleep)

    def confirm_at_ten_seconds(clk):
        if clk.now >= 1010.0 and not os.path.exists(guard.paths.decision):
            # The watcher is this very process: the confirmer must not wait for it.
            won, _record = _guard_state.claim(guard.paths, _guard_state.CONFIRMED, "confirm")
            assert won

    clock.on_sleep = confirm_at_ten_seconds
    result = guard.watch(pid=os.getpid())
    assert result["confirmed"] is True and result["rolled_back"] is False and result["changed"] is False
    assert existing.read_text() == "DEVICE=eth0\nBRIDGE=breth0\n"
    assert new.exists()
    assert runtime.restored == []
    assert clock.now < 1011.0
    assert not os.path.exists(guard.paths.state)
    # A second confirmation is a no-op, not an error.
    assert confirmer.confirm(wait=1)["confirmed"] is True


def test_confirm_without_watcher_finishes_itself(env):
    guard, _clock, runtime, etc = env
    existing, new = _files(etc)
    guard.arm(60, [str(existing), str(new)], "x", True)
    result = guard.confirm(wait=1)
    assert result["confirmed"] is True and result["watcher_done"] is True
    assert not os.path.exists(guard.paths.state)
    assert _guard_state.read_json(guard.paths.result)["confirmed"] is True
    assert runtime.restored == []


def test_confirm_after_rollback_is_too_late(env):
    guard, _clock, _runtime, etc = env
    existing, new = _files(etc)
    guard.arm(1, [str(existing), str(new)], "x", True)
    guard.watch(pid=os.getpid())
    with pytest.raises(ModuleError, match="This confirmation came too late") as info:
        guard.confirm(wait=1)
    assert info.value.result["last"]["rolled_back"] is True


def test_confirm_while_watcher_rolls_back_is_too_late(env):
    guard, _clock, _runtime, etc = env
    existing, new = _files(etc)
    guard.arm(60, [str(existing), str(new)], "x", True)
    won, decision = _guard_state.claim(guard.paths, _guard_state.ROLLBACK, "watcher", "no confirmation within 60s")
    assert won
    state = _guard_state.read_state(guard.paths.state)
    # The watcher finishes its restore while the confirmation waits for the outcome.
    finisher = threading.Timer(0.2, guard._roll_back, (state, decision))
    finisher.start()
    real = _guard.Guard(FakeModule(), guard.paths, FakeRuntime(), poll=0.02)
    try:
        with pytest.raises(ModuleError, match="Too late to confirm") as info:
            real.confirm(wait=1)
    finally:
        finisher.join()
    assert info.value.result["rolled_back"] is True


def test_only_one_decision_is_ever_taken(env):
    guard = env[0]
    guard.arm(60, [], "x", False)
    results = []
    barrier = threading.Barrier(8)

    def race(kind):
        barrier.wait()
        results.append(_guard_state.claim(guard.paths, kind, kind))

    threads = [threading.Thread(target=race, args=(_guard_state.CONFIRMED if i % 2 else _guard_state.ROLLBACK,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [record for won, record in results if won]
    assert len(winners) == 1
    assert all(record["decision"] == winners[0]["decision"] for _won, record in results)


def test_rollback_action_restores_at_once(env):
    guard, clock, runtime, etc = env
    existing, new = _files(etc)
    guard.arm(60, [str(existing), str(new)], "bridging eth0 into breth0", True)
    _change(existing, new)
    result = guard.rollback("the bridge task failed")
    assert result["rolled_back"] is True and result["decided_by"] == "rollback action"
    assert result["reason"] == "the bridge task failed"
    assert not new.exists()
    assert runtime.restored
    assert clock.now == 1000.0


def test_rollback_after_confirmation_is_refused(env):
    guard = env[0]
    guard.arm(60, [], "x", False)
    _guard_state.claim(guard.paths, _guard_state.CONFIRMED, "confirm")
    with pytest.raises(ModuleError, match="already confirmed"):
        guard.rollback("why")


def test_watcher_reports_a_rollback_done_by_the_rollback_action(env):
    guard, clock, runtime, etc = env
    existing, new = _files(etc)
    guard.arm(60, [str(existing), str(new)], "x", True)
    other = _guard.Guard(FakeModule(), guard.paths, runtime, clock=clock, sleep=clock.sleep)

    def roll_back_at_five(clk):
        if clk.now >= 1005.0 and os.path.exists(guard.paths.state) and not os.path.exists(guard.paths.decision):
            other.rollback("task failed")

    clock.on_sleep = roll_back_at_five
    result = guard.watch(pid=os.getpid())
    assert result["rolled_back"] is True and result["decided_by"] == "rollback action"
    assert len(runtime.restored) == 1  # restored once, not twice


def test_failed_runtime_restore_still_restores_files(env):
    guard, _clock, _runtime, etc = env
    guard.runtime = FakeRuntime(fail=True)
    existing, new = _files(etc)
    guard.arm(1, [str(existing), str(new)], "x", True)
    _change(existing, new)
    result = guard.watch(pid=os.getpid())
    assert result["rolled_back"] is True
    assert result["errors"] == ["runtime state: netlink said no"]
    assert "Some parts could not be restored" in result["msg"]
    assert not new.exists()


def test_arm_refuses_while_a_watcher_runs(env):
    guard = env[0]
    guard.arm(60, [], "x", False)
    state = _guard_state.read_json(guard.paths.state)
    state["watcher"] = {"pid": os.getpid(), "start": _guard_state.process_start(os.getpid())}
    _guard_state.write_json(guard.paths.state, state)
    with pytest.raises(ModuleError, match="in progress"):
        guard.arm(60, [], "x", False)
    assert guard.status()["watching"] is True


def test_arm_replaces_a_stale_arming(env):
    guard = env[0]
    guard.arm(60, [], "x", False)
    state = _guard_state.read_json(guard.paths.state)
    state["watcher"] = {"pid": os.getpid(), "start": -1}  # same PID, another process start: gone
    _guard_state.write_json(guard.paths.state, state)
    result = guard.arm(60, [], "y", False)
    assert result["warnings"] and "Replaced an earlier arming" in result["warnings"][0]


def test_watch_and_confirm_need_an_armed_guard(env):
    guard = env[0]
    with pytest.raises(ModuleError, match="not armed"):
        guard.watch(pid=os.getpid())
    with pytest.raises(ModuleError, match="not armed"):
        guard.confirm(wait=1)


def test_status(env):
    guard = env[0]
    assert guard.status() == {"changed": False, "id": "host-bridge-h1", "armed": False, "watching": False, "last": None}
    guard.arm(60, [], "bridging eth0 into breth0", False)
    status = guard.status()
    assert status["armed"] and not status["watching"] and status["description"] == "bridging eth0 into breth0"
    guard.watch(pid=os.getpid())
    status = guard.status()
    assert not status["armed"] and status["last"]["rolled_back"] is True


# -- the runtime restore plan ---------------------------------------------------

from socket import AF_INET, AF_INET6  # noqa: E402

from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_apply as ka  # noqa: E402
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks  # noqa: E402

MAC0 = "52:54:00:00:00:01"


def _lo():
    return ks.Link(index=1, name="lo", loopback=True, up=True, mac="00:00:00:00:00:00", mtu=65536)


def _before_bridging():
    links = [_lo(), ks.Link(index=2, name="eth0", kind="veth", mac=MAC0, up=True)]
    addresses = [
        ks.Address(dev="eth0", family=AF_INET, address="198.18.0.2", local="198.18.0.2", prefixlen=30, flags=0x80),
        ks.Address(dev="eth0", family=AF_INET6, address="fe80::1", prefixlen=64, flags=0x80),
    ]
    routes = [
        ks.Route(family=AF_INET, dev="eth0", gateway="198.18.0.1", proto=3),
        ks.Route(family=AF_INET, dev="eth0", dst="198.18.0.0", dst_len=30, proto=2, scope=253, prefsrc="198.18.0.2"),
    ]
    return ks.Snapshot(links, addresses, routes)


def _after_bridging():
    links = [
        _lo(),
        ks.Link(index=2, name="eth0", kind="veth", mac=MAC0, up=True, master="breth0"),
        ks.Link(index=3, name="breth0", kind="bridge", mac=MAC0, up=True, bridge={"stp": 0, "forward_delay": 0}),
        ks.Link(index=4, name="vnet0", kind="tun", mac="fe:54:00:00:00:02", up=True, master="breth0"),
    ]
    addresses = [
        ks.Address(dev="breth0", family=AF_INET, address="198.18.9.9", local="198.18.9.9", prefixlen=30, flags=0x80),
        ks.Address(dev="eth0", family=AF_INET6, address="fe80::1", prefixlen=64, flags=0x80),
    ]
    routes = [
        ks.Route(family=AF_INET, dev="breth0", gateway="198.18.9.10", proto=3),
        ks.Route(family=AF_INET, dev="breth0", dst="198.18.9.8", dst_len=30, proto=2, scope=253),
    ]
    return ks.Snapshot(links, addresses, routes)


def _texts(steps):
    return [step.description for step in steps]


def test_restore_plan_undoes_a_bridging():
    steps = ka.plan_restore(_before_bridging(), _after_bridging(), ["eth0", "breth0"])
    assert _texts(steps) == [
        "delete bridge breth0, which did not exist",
        "set eth0 master none",
        "add 198.18.0.2/30 to eth0",
        "restore route 'default via 198.18.0.1 dev eth0 proto boot'",
    ]
    # The guest's tap that joined meanwhile stays; the kernel's own route and the link-local address are left alone.
    assert not any("vnet0" in text for text in _texts(steps))


def test_restore_plan_is_empty_when_nothing_changed():
    assert ka.plan_restore(_before_bridging(), _before_bridging(), ["eth0", "breth0"]) == []
    assert ka.plan_restore(_after_bridging(), _after_bridging(), ()) == []


def test_restore_plan_recreates_a_deleted_bridge_with_its_ports_and_addresses():
    before, after = _after_bridging(), _before_bridging()
    steps = ka.plan_restore(before, after, ["breth0"])
    ops = [(step.op, step.args.get("name")) for step in steps]
    assert ops[0] == ("create_bridge", "breth0")
    assert steps[0].args == {"name": "breth0", "mac": MAC0, "mtu": 1500, "options": {"stp": 0, "forward_delay": 0}}
    assert ("set_link", "eth0") in ops and ("set_link", "vnet0") in ops
    texts = _texts(steps)
    assert "bring breth0 up" in texts
    assert "add 198.18.9.9/30 to breth0" in texts
    assert "remove 198.18.0.2/30 from eth0" in texts
    assert "restore route 'default via 198.18.9.10 dev breth0 proto boot'" in texts
    # Addresses come before routes, which need them.
    assert texts.index("add 198.18.9.9/30 to breth0") < texts.index("restore route 'default via 198.18.9.10 dev breth0 proto boot'")


def test_restore_plan_puts_back_link_settings():
    before = _before_bridging()
    after = _before_bridging()
    after.links["eth0"].mtu = 9000
    after.links["eth0"].up = False
    after.links["eth0"].mac = "52:54:00:00:00:99"
    after.addresses.append(ks.Address(dev="eth0", family=AF_INET, address="198.18.7.7", local="198.18.7.7", prefixlen=24))
    after.routes.append(ks.Route(family=AF_INET, dev="eth0", dst="198.18.50.0", dst_len=24, gateway="198.18.0.1", proto=4))
    texts = _texts(ka.plan_restore(before, after, ["eth0"]))
    assert texts == [
        "set eth0 mac 52:54:00:00:00:01, mtu 1500",
        "bring eth0 up",
        "remove 198.18.7.7/24 from eth0",
        "remove route '198.18.50.0/24 via 198.18.0.1 dev eth0 proto static'",
    ]


def test_restore_scope_defaults_to_every_link_but_loopback():
    assert ka.restore_scope(_before_bridging(), _after_bridging(), ()) == {"eth0", "breth0", "vnet0"}


def test_snapshot_survives_json():
    snap = _after_bridging()
    snap.routes.append(
        ks.Route(family=AF_INET6, multipath=(ks.Nexthop(dev="breth0", gateway="fe80::1"), ks.Nexthop(dev="eth0")), metrics=(("RTAX_MTU", 1400),), proto=4)
    )
    data = json.loads(json.dumps(ks.snapshot_to_json(snap)))
    back = ks.snapshot_from_json(data)
    assert back.links == snap.links
    assert back.addresses == snap.addresses
    assert back.routes == snap.routes


def test_status_waits_for_a_starting_watcher(env):
    guard, clock, _runtime, _etc = env
    guard.arm(60, [], "x", False)

    def watcher_starts_at_two_seconds(clk):
        if clk.now >= 1002.0:
            state = _guard_state.read_json(guard.paths.state)
            if not state.get("watcher"):
                state["watcher"] = {"pid": os.getpid(), "start": _guard_state.process_start(os.getpid())}
                _guard_state.write_json(guard.paths.state, state)

    clock.on_sleep = watcher_starts_at_two_seconds
    assert guard.status(wait=10)["watching"] is True
    assert 1002.0 <= clock.now < 1003.0


def test_status_does_not_wait_when_not_armed(env):
    guard, clock, _runtime, _etc = env
    assert guard.status(wait=10)["armed"] is False
    assert clock.now == 1000.0


def test_guards_of_two_network_namespaces_do_not_meet(tmp_path):
    one = _guard_state.Paths(str(tmp_path), "host_bridge-h1", "net4026531840")
    other = _guard_state.Paths(str(tmp_path), "host_bridge-h1", "net4026532001")
    assert one.state != other.state and one.decision != other.decision and one.result != other.result
    assert one.state.endswith("guard-host_bridge-h1.net4026531840.json")
    assert _guard_state.netns_scope().startswith("net")


# -- the countdown from the start signal -------------------------------------------


def test_countdown_runs_from_the_start_signal(env):
    guard, clock, runtime, etc = env
    existing, new = _files(etc)
    guard.arm(20, [str(existing), str(new)], "bridging eth0 into breth0", True, start_within=300)
    starter = _guard.Guard(FakeModule(), guard.paths, runtime, clock=clock, sleep=clock.sleep)

    def files_then_start_at_100s(clk):
        if clk.now >= 1050.0 and not new.exists():
            _change(existing, new)  # written before the start: restored too, but not counted
        if clk.now >= 1100.0 and not os.path.exists(guard.paths.go):
            assert starter.start(wait=0)["remaining"] == 20

    clock.on_sleep = files_then_start_at_100s
    result = guard.watch(pid=os.getpid())
    assert result["rolled_back"] is True and result["reason"] == "no confirmation within 20s"
    assert 1120.0 <= clock.now < 1121.0  # 100 s before the start did not count
    assert not new.exists() and existing.read_text() == "DEVICE=eth0\nIPADDR=198.18.0.2\n"
    assert not os.path.exists(guard.paths.go)


def test_no_start_signal_rolls_back_what_was_done(env):
    guard, clock, _runtime, etc = env
    existing, new = _files(etc)
    guard.arm(20, [str(existing), str(new)], "x", True, start_within=300)

    def files_only(clk):
        if not new.exists():
            _change(existing, new)

    clock.on_sleep = files_only
    result = guard.watch(pid=os.getpid())
    assert result["rolled_back"] is True and result["reason"] == "the change did not start within 300s"
    assert 1300.0 <= clock.now < 1301.0
    assert not new.exists()


def test_start_needs_a_running_watcher(env):
    guard = env[0]
    with pytest.raises(ModuleError, match="is not armed"):
        guard.start(wait=0)
    guard.arm(20, [], "x", False, start_within=300)
    with pytest.raises(ModuleError, match="does not run"):
        guard.start(wait=1)
    assert not os.path.exists(guard.paths.go)
    state = _guard_state.read_json(guard.paths.state)
    state["watcher"] = {"pid": os.getpid(), "start": _guard_state.process_start(os.getpid())}
    _guard_state.write_json(guard.paths.state, state)
    started = guard.start(wait=1)
    assert started["watching"] is True and started["remaining"] == 20
    assert guard.status()["remaining"] == 20
    # A second start keeps the first signal.
    assert guard.start(wait=1)["started_at"] == started["started_at"]


def test_arm_refuses_a_negative_start_within(env):
    with pytest.raises(ModuleError, match="start_within"):
        env[0].arm(20, [], "x", False, start_within=-1)

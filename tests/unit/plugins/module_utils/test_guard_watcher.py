"""The guard's detached watcher: real double forks in this process, a fake runtime, the real clock.

The waits below are bounded polls for an event (a file, a process end), never assertions on durations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _guard, _guard_state
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from polling import until  # noqa: E402
from test_guard import FakeModule, FakeRuntime  # noqa: E402


@pytest.fixture
def guard(tmp_path):
    paths = _guard_state.Paths(str(tmp_path / "run"), "host-bridge-h1")
    return _guard.Guard(FakeModule(), paths, FakeRuntime(), poll=0.02)


def _files(tmp_path):
    existing = tmp_path / "ifcfg-eth0"
    existing.write_text("DEVICE=eth0\nIPADDR=198.18.0.2\n")
    return existing, tmp_path / "ifcfg-breth0"


def test_spawn_detached_runs_in_its_own_session_without_our_descriptors(tmp_path):
    report = tmp_path / "report.json"
    keep_r, keep_w = os.pipe()  # a descriptor of ours, as an SSH channel or Mitogen's socket would be
    try:

        def work():
            fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
            info = {
                "pid": os.getpid(),
                "sid": os.getsid(0),
                "ppid": os.getppid(),
                "fds": fds,
                "stdio": [os.readlink("/proc/self/fd/%d" % fd) for fd in (0, 1, 2)],
                "cwd": os.getcwd(),
            }
            tmp = str(report) + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(info, handle)
            os.rename(tmp, str(report))

        pid = _guard.spawn_detached(work)
        info = until(lambda: report.exists() and json.loads(report.read_text()))
    finally:
        os.close(keep_r)
        os.close(keep_w)
    assert info["pid"] == pid != os.getpid()
    assert info["sid"] not in (os.getsid(0), pid)  # a new session, and not its leader: it can never get a terminal
    assert info["ppid"] != os.getpid()  # not our child: no zombie of ours, nothing to wait for
    assert info["stdio"] == ["/dev/null"] * 3
    assert keep_r not in info["fds"] and keep_w not in info["fds"]
    assert [fd for fd in info["fds"] if fd > 2] == [3]  # only what work() opened itself (the listing)
    assert info["cwd"] == "/"
    until(lambda: not _guard_state.pid_alive(pid))


def test_arm_starts_a_watcher_that_a_confirmation_ends(guard, tmp_path):
    existing, new = _files(tmp_path)
    guard.arm(60, [str(existing), str(new)], "bridging eth0 into breth0", True)
    started = guard.start_watcher(wait=30)
    assert started["scope"] is None and started["warnings"] == []
    status = guard.status()
    assert status["watching"] is True
    pid = started["watcher"]
    assert _guard_state.read_json(guard.paths.state)["watcher"]["pid"] == pid
    existing.write_text("DEVICE=eth0\nBRIDGE=breth0\n")
    new.write_text("DEVICE=breth0\n")

    result = guard.confirm(wait=30)
    assert result["confirmed"] is True and result["watcher_done"] is True
    outcome = result["outcome"]
    assert outcome["confirmed"] is True and outcome["rolled_back"] is False and outcome["decided_by"] == "confirm"
    assert outcome["msg"] == "Confirmed bridging eth0 into breth0."
    assert existing.read_text() == "DEVICE=eth0\nBRIDGE=breth0\n" and new.exists()
    until(lambda: not _guard_state.pid_alive(pid))
    assert not os.path.exists(guard.paths.watcher_error)


def test_the_detached_watcher_rolls_back_by_itself(guard, tmp_path):
    existing, new = _files(tmp_path)
    guard.arm(1, [str(existing), str(new)], "bridging eth0 into breth0", False)
    started = guard.start_watcher(wait=30)
    existing.write_text("DEVICE=eth0\nBRIDGE=breth0\n")
    new.write_text("DEVICE=breth0\n")
    # Nobody confirms: the watcher restores the files, and status (with wait) reports its outcome.
    last = until(lambda: guard.status(wait=1)["last"])
    assert last["rolled_back"] is True and last["decided_by"] == "watcher"
    assert last["reason"] == "no confirmation within 1s"
    assert existing.read_text() == "DEVICE=eth0\nIPADDR=198.18.0.2\n"
    assert not new.exists()
    until(lambda: not _guard_state.pid_alive(started["watcher"]))
    with pytest.raises(ModuleError, match=r"Too late|not armed"):
        guard.confirm(wait=1)


def test_status_waits_for_a_decision_to_be_carried_out(guard, tmp_path):
    existing, new = _files(tmp_path)
    guard.arm(3600, [str(existing), str(new)], "x", False)
    guard.start_watcher(wait=30)
    new.write_text("DEVICE=breth0\n")
    won, _decision = _guard_state.claim(guard.paths, _guard_state.ROLLBACK, "rollback action", "a step failed")
    assert won
    # The decision is taken but nobody carries it out: the watcher sees it and waits for the outcome; status waits too.
    status = guard.status(wait=0)
    assert status["armed"] is True and status["last"] is None
    state, decision = _guard_state.read_state(guard.paths.state), _guard_state.read_json(guard.paths.decision)
    later = threading.Thread(target=lambda: (time.sleep(0.5), guard._roll_back(state, decision)))
    later.start()
    try:
        status = guard.status(wait=30)
    finally:
        later.join()
    assert status["armed"] is False and status["last"]["rolled_back"] is True
    assert not new.exists()


def _exited_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_watcher_that_does_not_run_withdraws_the_arming(guard, tmp_path):
    existing, new = _files(tmp_path)
    guard.arm(60, [str(existing), str(new)], "x", True)

    def spawn(_work):
        with open(guard.paths.watcher_error, "w") as handle:
            handle.write("Traceback ...\nMemoryError: out of memory\n")
        return _exited_pid()

    with pytest.raises(ModuleError) as info:
        guard.start_watcher(wait=5, spawn=spawn)
    assert "ended before it ran; the guard is not armed and nothing was changed" in info.value.msg
    assert "It said: MemoryError: out of memory" in info.value.msg
    assert not os.path.exists(guard.paths.state)
    assert guard.status()["armed"] is False


def test_a_watcher_that_fails_says_why(guard, tmp_path):
    existing, new = _files(tmp_path)
    guard.arm(60, [str(existing), str(new)], "x", True)
    # A watcher already recorded (this very process): the detached one refuses to watch, and says so.
    state = _guard_state.read_json(guard.paths.state)
    state["watcher"] = {"pid": os.getpid(), "start": _guard_state.process_start(os.getpid())}
    _guard_state.write_json(guard.paths.state, state)

    def spawn(work):
        pid = _guard.spawn_detached(work)
        until(lambda: not _guard_state.pid_alive(pid))
        state["watcher"] = None
        _guard_state.write_json(guard.paths.state, state)
        return pid

    with pytest.raises(ModuleError, match=r"ended before it ran.*It said: Guard host-bridge-h1 already has a watcher"):
        guard.start_watcher(wait=5, spawn=spawn)


def test_where_systemd_runs_the_watcher_moves_into_a_transient_scope(guard, tmp_path):
    existing, new = _files(tmp_path)
    guard.arm(60, [str(existing), str(new)], "bridging eth0 into breth0", False)
    systemd = tmp_path / "systemd"
    systemd.mkdir()
    calls = []

    def scope(pid, unit, description):
        calls.append((pid, unit, description))

    started = guard.start_watcher(wait=30, scope=scope, systemd_dir=str(systemd))
    arming = _guard_state.read_json(guard.paths.state)["arming"]
    unit = "kvmhost-bridging-guard-host-bridge-h1-%s.scope" % arming
    assert calls == [(started["watcher"], unit, "kvmhost.bridging guard host-bridge-h1: bridging eth0 into breth0")]
    assert started["scope"] == unit and started["warnings"] == []
    guard.confirm(wait=30)


def test_a_failed_scope_move_is_a_warning_and_the_watcher_runs(guard, tmp_path):
    existing, new = _files(tmp_path)
    guard.arm(60, [str(existing), str(new)], "x", False)
    systemd = tmp_path / "systemd"
    systemd.mkdir()
    started = guard.start_watcher(wait=30, scope=lambda *_a: "Access denied", systemd_dir=str(systemd))
    assert started["scope"] is None
    assert "moving it into the transient unit" in started["warnings"][0] and "(Access denied)" in started["warnings"][0]
    assert guard.status()["watching"] is True
    guard.confirm(wait=30)


def test_without_systemd_no_scope_is_asked_for(guard, tmp_path):
    existing, new = _files(tmp_path)
    guard.arm(60, [str(existing), str(new)], "x", False)
    calls = []
    started = guard.start_watcher(wait=30, scope=lambda *a: calls.append(a), systemd_dir=str(tmp_path / "nothing"))
    assert calls == [] and started["scope"] is None
    guard.confirm(wait=30)


def test_systemd_scope_argv():
    argv = _guard.systemd_scope_argv("/usr/bin/busctl", "kvmhost-bridging-guard-x-00.scope", 4242, "guard x")
    assert argv == [
        "/usr/bin/busctl",
        "call",
        "--quiet",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        "kvmhost-bridging-guard-x-00.scope",
        "fail",
        "3",
        "PIDs",
        "au",
        "1",
        "4242",
        "Description",
        "s",
        "guard x",
        "CollectMode",
        "s",
        "inactive-or-failed",
        "0",
    ]


class _Module:
    def __init__(self, busctl, rc=0, err=""):
        self.busctl, self.rc, self.err, self.argv = busctl, rc, err, None

    def get_bin_path(self, name):
        assert name == "busctl"
        return self.busctl

    def run_command(self, argv):
        self.argv = argv
        return self.rc, "", self.err


def test_busctl_scope():
    module = _Module("/usr/bin/busctl")
    assert _guard.busctl_scope(module)(7, "u.scope", "d") is None
    assert module.argv == _guard.systemd_scope_argv("/usr/bin/busctl", "u.scope", 7, "d")
    assert _guard.busctl_scope(_Module("/usr/bin/busctl", 1, "Access denied\n"))(7, "u.scope", "d") == "Access denied"
    assert _guard.busctl_scope(_Module(None))(7, "u.scope", "d") == "busctl is not installed"

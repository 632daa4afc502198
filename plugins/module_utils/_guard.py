# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A "commit confirmed" guard for network changes made over the network.

The guard protects one change, named by an id:

- ``arm`` saves the listed files (their content, or that they do not exist)
  and a snapshot of the runtime network state in ``<state_dir>/guard-<id>.json``.
- the watcher, which ``arm`` starts detached on the host itself
  (``start_watcher``: a double fork into its own session, moved into a
  transient systemd scope where systemd runs), waits until the deadline for a
  decision. Without one it claims the decision ``rollback`` and restores the
  runtime state and the files. The countdown begins when the watcher starts
  or, when the guard was armed with ``start_within``, at the ``start`` signal,
  so that only the risky part of a change runs against it. Nothing of it
  depends on the connection that armed it: not Ansible's async, not the
  connection plugin or strategy, not the SSH session staying open.
- ``start`` checks that the watcher runs and gives that signal.
- ``confirm`` (run over a fresh connection, which proves that the host is
  still reachable) claims the decision ``confirmed``, waits for the watcher
  to finish and returns the outcome with the confirmation.
- ``rollback`` claims ``rollback`` at once and restores in its own process.
- ``status`` reports what the guard knows, including the last outcome.

Exactly one decision is ever taken per arming: it is a file made with
``link(2)``, which fails when the file exists, so a confirmation that arrives
while the watcher is already rolling back gets a clear "too late" instead of a
success that is not true. The outcome is kept in ``guard-<id>.result.json``
until the next ``arm``, for a confirmation or a play that comes late.

Times are CLOCK_BOOTTIME seconds: they keep counting while the host
suspends and do not jump with the wall clock, and every process on the host
reads the same clock.

The runtime snapshot is _kernel_snapshot's and the restore _kernel_apply's
(plan_restore()); this module holds only the glue. The state directory (ids, paths,
the state-file records, the decision) is _guard_state's. Everything else is plain
file handling, testable without root.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import signal
import time
import traceback
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import atomic_write, read_bytes
from ansible_collections.kvmhost.bridging.plugins.module_utils._guard_state import (
    CONFIRMED,
    FORMAT,
    POLL_INTERVAL,
    ROLLBACK,
    GuardState,
    Watcher,
    boottime,
    check_seconds,
    claim,
    ensure_dir,
    pid_alive,
    process_start,
    read_json,
    read_state,
    unlink,
    wall_clock,
    watcher_alive,
    write_json,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import validate_ifname
from ansible_collections.kvmhost.bridging.plugins.module_utils._process import spawn_detached

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from contextlib import AbstractContextManager
    from types import ModuleType
    from typing import Optional

    from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_plan import Step
    from ansible_collections.kvmhost.bridging.plugins.module_utils._guard_state import Paths

    # scope(pid, unit, description): None, or what went wrong (Guard.start_watcher)
    Scope = Callable[[int, str, str], Optional[str]]  # an alias is an expression: no X | None on Python 3.9

# -- files --------------------------------------------------------------------


def capture_files(paths: Iterable[str]) -> list[dict[str, Any]]:
    """What each file holds now: its bytes (base64), mode and owner, or that it does not exist."""
    saved: list[dict[str, Any]] = []
    for path in paths:
        if not os.path.isabs(path):
            raise ModuleError("The guard needs absolute paths; got %r." % path)
        data = read_bytes(path)
        if data is None:
            saved.append({"path": path, "exists": False})
            continue
        info = os.stat(path)
        saved.append(
            {
                "path": path,
                "exists": True,
                "content": base64.b64encode(data).decode("ascii"),
                "mode": info.st_mode & 0o7777,
                "uid": info.st_uid,
                "gid": info.st_gid,
            }
        )
    return saved


def restore_files(module: Any, saved: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Put every saved file back as it was; return what was done per path.

    Writes go through _fileio.atomic_write, so a symbolic link is restored
    through (the file it names gets the content back, the link stays). A
    file that cannot be restored is reported with ``action: failed`` and an
    ``error``; the other files are restored all the same.
    """
    done = []
    for item in saved:
        try:
            done.append(_restore_file(module, item))
        except (ModuleError, OSError) as exc:
            done.append({"path": item["path"], "action": "failed", "error": getattr(exc, "msg", None) or str(exc)})
    return done


def _restore_file(module: Any, item: Mapping[str, Any]) -> dict[str, Any]:
    path = item["path"]
    current = read_bytes(path)
    if not item["exists"]:
        if current is None:
            return {"path": path, "action": "unchanged"}
        os.unlink(path)
        return {"path": path, "action": "removed"}
    data = base64.b64decode(item["content"])
    if current == data:
        return {"path": path, "action": "unchanged"}
    atomic_write(module, path, data, new_mode=item["mode"])
    with contextlib.suppress(OSError):  # the owner and mode it had, whatever happened in between
        os.chown(path, item["uid"], item["gid"])
        os.chmod(path, item["mode"])
    return {"path": path, "action": "restored" if current is not None else "recreated"}


# -- the detached watcher -----------------------------------------------------

SYSTEMD_RUNS = "/run/systemd/system"  # exists only where systemd is the init system (sd_booted())


def systemd_scope_argv(busctl: str, unit: str, pid: int, description: str) -> list[str]:
    """busctl's call that moves ``pid`` into a new transient scope unit named ``unit``.

    systemd's StartTransientUnit with the PIDs property, as ``systemd-run --scope``
    does for itself: the watcher leaves the login session's scope, so that
    logind's KillUserProcesses or the end of the session does not kill it.
    """
    return [
        busctl,
        "call",
        "--quiet",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        unit,
        "fail",
        "3",
        "PIDs",
        "au",
        "1",
        str(pid),
        "Description",
        "s",
        description,
        "CollectMode",
        "s",
        "inactive-or-failed",
        "0",
    ]


def busctl_scope(module: Any) -> Scope:
    """The ``scope`` of Guard.start_watcher over busctl, run with ``module.run_command``."""
    busctl = module.get_bin_path("busctl")

    def move(pid: int, unit: str, description: str) -> str | None:
        if busctl is None:
            return "busctl is not installed"
        rc, out, err = module.run_command(systemd_scope_argv(busctl, unit, pid, description))
        return None if rc == 0 else ((err or out).strip() or "busctl exited with %d" % rc)

    return move


def scope_unit(paths: Paths, arming: str) -> str:
    """The name of the transient scope of one arming's watcher."""
    return "kvmhost-bridging-guard-%s-%s.scope" % (paths.id, arming)


# -- the guard ----------------------------------------------------------------


class Runtime:
    """How the guard takes and restores the runtime network state.

    ``snapshot()`` returns a JSON-serialisable value; ``restore(value)``
    returns a short description of what it put back. The default one is
    NetlinkRuntime (below); the unit tests pass their own.
    """

    def snapshot(self) -> Any:
        raise NotImplementedError

    def restore(self, snapshot: Any) -> Any:
        raise NotImplementedError


class Guard:
    """The five actions, over a state directory, a Runtime and an AnsibleModule-like ``module``."""

    def __init__(
        self,
        module: Any,
        paths: Paths,
        runtime: Runtime,
        clock: Callable[[], float] = boottime,
        sleep: Callable[[float], object] = time.sleep,
        poll: float = POLL_INTERVAL,
    ) -> None:
        self.module = module
        self.paths = paths
        self.runtime = runtime
        self.clock = clock
        self.sleep = sleep
        self.poll = poll

    # arm --------------------------------------------------------------------
    def arm(
        self, timeout: int, files: Iterable[str], description: str | None, with_runtime: bool, check_mode: bool = False, start_within: int = 0
    ) -> dict[str, Any]:
        check_seconds("timeout", timeout, 1)
        check_seconds("start_within", start_within, 0, " (0: count from the watcher's start)")
        state = read_state(self.paths.state)
        if state is not None and state.watcher is not None and watcher_alive(state):
            raise ModuleError(
                "A guarded change with id %s is in progress (watcher PID %s, armed at %s). Wait for it to be confirmed or "
                "rolled back (at most %ss), or run the guard with action=rollback." % (self.paths.id, state.watcher.pid, state.armed_at, state.timeout),
                id=self.paths.id,
            )
        warnings: list[str] = []
        if state is not None:
            warnings.append("Replaced an earlier arming of guard %s (armed at %s) whose watcher never ran or is gone." % (self.paths.id, state.armed_at))
        saved = capture_files(files)
        snapshot = self.runtime.snapshot() if with_runtime else None
        state = GuardState(
            id=self.paths.id,
            description=description,
            timeout=timeout,
            start_within=start_within,
            armed_at=wall_clock(),
            armed_boottime=self.clock(),
            arming=binascii.hexlify(os.urandom(8)).decode("ascii"),
            files=saved,
            runtime=snapshot,
        )
        if not check_mode:
            ensure_dir(self.paths.dir)
            unlink(self.paths.decision)
            unlink(self.paths.result)
            unlink(self.paths.go)
            write_json(self.paths.state, state.to_json())
        return {
            "changed": False,
            "armed": not check_mode,
            "state_file": self.paths.state,
            "files": [{"path": item["path"], "exists": item["exists"]} for item in saved],
            "runtime": with_runtime,
            "timeout": timeout,
            "warnings": warnings,
        }

    # the watcher ------------------------------------------------------------
    def start_watcher(
        self, wait: float, spawn: Callable[[Callable[[], None]], int] = spawn_detached, scope: Scope | None = None, systemd_dir: str = SYSTEMD_RUNS
    ) -> dict[str, Any]:
        """Start the armed guard's watcher detached on this host and wait (up to ``wait`` seconds) until it runs.

        ``spawn(work)`` starts ``work`` detached and returns its PID. Where systemd
        runs, ``scope(pid, unit, description)`` moves the watcher into a transient
        scope unit and returns None, or what went wrong (a warning: the watcher
        runs anyway). Without a running watcher the arming is withdrawn, since
        nothing may change unguarded, and ModuleError says why.
        """
        state = self._load("arm")
        unlink(self.paths.watcher_error)
        pid = spawn(self._watch_detached)
        out: dict[str, Any] = {"watcher": pid, "scope": None, "warnings": []}
        if scope is not None and os.path.isdir(systemd_dir):
            unit = scope_unit(self.paths, state.arming)
            problem = scope(pid, unit, "kvmhost.bridging guard %s: %s" % (self.paths.id, state.description))
            if problem:
                out["warnings"].append(
                    "The guard's watcher (PID %s) runs in the session that armed it: moving it into the transient unit %s failed (%s). "
                    "Where logind kills a session's processes when it ends (KillUserProcesses=yes), a rollback would not come." % (pid, unit, problem)
                )
            else:
                out["scope"] = unit
        end = self.clock() + wait
        while True:
            now = read_state(self.paths.state)
            if now is not None and now.watcher is not None and now.watcher.pid == pid and watcher_alive(now):
                return out
            if now is None and (read_json(self.paths.result) or {}).get("arming") == state.arming:
                return out  # it ran, and a decision has already finished this arming
            gone = not pid_alive(pid)
            if gone or self.clock() >= end:
                break
            self.sleep(self.poll)
        if not gone:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        why = (read_bytes(self.paths.watcher_error) or b"").decode("utf-8", "replace").strip().splitlines()
        unlink(self.paths.state)
        unlink(self.paths.go)
        raise ModuleError(
            "The watcher of guard %s (PID %s) %s; the guard is not armed and nothing was changed. %s"
            % (
                self.paths.id,
                pid,
                "ended before it ran" if gone else "did not run within %ss" % wait,
                ("It said: %s" % why[-1]) if why else "Check the host's process limits and its Python, or run the change without the guard.",
            ),
            id=self.paths.id,
        )

    def _watch_detached(self) -> None:
        """The watcher's whole life in its detached process; what stops it early is kept for start_watcher's message."""
        try:
            self.watch(pid=os.getpid())
        except BaseException as exc:
            with contextlib.suppress(Exception):
                text = exc.msg if isinstance(exc, ModuleError) else traceback.format_exc()
                with open(self.paths.watcher_error, "w") as handle:
                    handle.write(text)

    def _load(self, action: str) -> GuardState:
        state = read_json(self.paths.state)
        if state is None:
            result = read_json(self.paths.result)
            if result is not None:
                raise ModuleError(
                    "Guard %s is not armed: its last change was %s at %s. %s"
                    % (
                        self.paths.id,
                        "confirmed" if result.get("confirmed") else "rolled back",
                        result.get("finished_at"),
                        "Arm it again before a new change." if action != "confirm" else "This confirmation came too late.",
                    ),
                    id=self.paths.id,
                    last=result,
                )
            raise ModuleError("Guard %s is not armed (no %s). Run the guard with action=arm first." % (self.paths.id, self.paths.state), id=self.paths.id)
        if state.get("format") != FORMAT:
            raise ModuleError("%s was written by another version of the guard; remove it and arm again." % self.paths.state)
        return GuardState.from_json(state)

    # watch ------------------------------------------------------------------
    def watch(self, pid: int | None = None, check_mode: bool = False) -> dict[str, Any]:
        """Wait for the decision; without one by the deadline, claim ``rollback`` and restore.

        With ``start_within`` (set at arm), the countdown of ``timeout`` begins at the
        ``start`` signal, which must come within ``start_within`` seconds; otherwise it
        begins when the watcher starts.
        """
        state = self._load("watch")
        if state.watcher is not None and watcher_alive(state):
            raise ModuleError("Guard %s already has a watcher (PID %s)." % (self.paths.id, state.watcher.pid), id=self.paths.id)
        if check_mode:
            return {"changed": False, "confirmed": False, "rolled_back": False, "msg": "Check mode: not watching."}
        pid = pid or os.getpid()
        started = self.clock()
        start_within = state.start_within or 0
        deadline = None if start_within else started + state.timeout
        state.watcher = Watcher(pid, process_start(pid), started, deadline)
        write_json(self.paths.state, state.to_json())
        decision = None
        while True:
            decision = read_json(self.paths.decision)
            if decision is not None:
                break
            now = self.clock()
            reason = None
            if deadline is None:
                go = read_json(self.paths.go)
                if go is not None:
                    deadline = go["at_boottime"] + state.timeout
                    state.watcher.deadline_boottime = deadline
                    write_json(self.paths.state, state.to_json())
                elif now >= started + start_within:
                    reason = "the change did not start within %ss" % start_within
            elif now >= deadline:
                reason = "no confirmation within %ss" % state.timeout
            if reason is not None:
                won, decision = claim(self.paths, ROLLBACK, "watcher", reason)
                if won:
                    return self._roll_back(state, decision)
                break
            if not os.path.exists(self.paths.state):
                # Another process decided and finished between two looks.
                result = read_json(self.paths.result)
                if result is not None and result.get("arming") == state.arming:
                    return dict(result, changed=bool(result.get("rolled_back")))
                raise ModuleError("The state of guard %s disappeared while watching; nothing was restored." % self.paths.id)
            self.sleep(self.poll)
        if decision.get("decision") == CONFIRMED:
            return self._finish(state, decision, confirmed=True, waited=decision.get("at_boottime", self.clock()) - started)
        # Someone else (the rollback action) restores; wait for its outcome.
        return self._await_result(state, decision)

    # start ------------------------------------------------------------------
    def start(self, wait: float, check_mode: bool = False) -> dict[str, Any]:
        """Wait (up to ``wait`` seconds) until the watcher runs, then start its countdown."""
        state = self.status(wait)
        if check_mode:
            return dict(state, msg="Check mode: not starting the countdown.")
        if not state["armed"]:
            raise ModuleError(
                "Guard %s is not armed; arm it and start its watcher before the change." % self.paths.id, id=self.paths.id, last=state.get("last")
            )
        if not state["watching"]:
            raise ModuleError(
                "The watcher of guard %s does not run (waited %ss); nothing must change without it. Roll back what was done"
                " with action=rollback." % (self.paths.id, wait),
                id=self.paths.id,
            )
        if state.get("decision"):
            raise ModuleError("Guard %s has already decided: %s." % (self.paths.id, state["decision"].get("decision")), id=self.paths.id)
        go = read_json(self.paths.go)
        if go is None:
            go = {"at": wall_clock(), "at_boottime": self.clock()}
            write_json(self.paths.go, go)
        armed = read_state(self.paths.state)
        return {
            "changed": False,
            "id": self.paths.id,
            "watching": True,
            "started_at": go["at"],
            "remaining": round(go["at_boottime"] + (armed.timeout if armed is not None else 0) - self.clock(), 3),
        }

    def _await_result(self, state: GuardState, decision: Mapping[str, Any], limit: float = 120.0) -> dict[str, Any]:
        end = self.clock() + limit
        while self.clock() < end:
            result = read_json(self.paths.result)
            if result is not None and result.get("arming") == state.arming:
                return dict(result, changed=bool(result.get("rolled_back")), watcher="saw the decision of %s" % decision.get("by"))
            self.sleep(self.poll)
        raise ModuleError(
            "Guard %s: %s decided %s, but no outcome was recorded within %ss." % (self.paths.id, decision.get("by"), decision.get("decision"), limit)
        )

    # confirm ----------------------------------------------------------------
    def confirm(self, wait: float, check_mode: bool = False) -> dict[str, Any]:
        if not os.path.exists(self.paths.state):
            last = read_json(self.paths.result)
            if last is not None and last.get("confirmed"):
                return {"changed": False, "confirmed": True, "id": self.paths.id, "already": True, "last": last}
        state = self._load("confirm")
        now = self.clock()
        deadline = self._deadline(state)
        if check_mode:
            return {"changed": False, "confirmed": False, "msg": "Check mode: not confirming."}
        won, decision = claim(self.paths, CONFIRMED, "confirm")
        if not won and decision.get("decision") != CONFIRMED:
            result = self._await_result(state, decision)
            raise ModuleError(
                "Too late to confirm guard %s: %s already decided to roll back (%s); the previous state was restored at %s."
                % (self.paths.id, decision.get("by"), decision.get("reason"), result.get("finished_at")),
                id=self.paths.id,
                rolled_back=True,
                outcome=result,
            )
        summary: dict[str, Any] = {
            "changed": False,
            "confirmed": True,
            "id": self.paths.id,
            "since_arm": round(now - state.armed_boottime, 3),
            "remaining": round(deadline - now, 3) if deadline else None,
        }
        if watcher_alive(state):
            end = self.clock() + wait
            while self.clock() < end and os.path.exists(self.paths.state):
                self.sleep(self.poll)
            summary["watcher_done"] = not os.path.exists(self.paths.state)
            outcome = read_json(self.paths.result)
            summary["outcome"] = outcome if (outcome or {}).get("arming") == state.arming else None
        else:
            # No watcher (it never started, or died): finish here.
            summary["outcome"] = self._finish(state, decision, confirmed=True, waited=0)
            summary["outcome"].pop("changed", None)
            summary["watcher_done"] = True
        return summary

    # rollback ---------------------------------------------------------------
    def rollback(self, reason: str | None, check_mode: bool = False) -> dict[str, Any]:
        state = self._load("rollback")
        if check_mode:
            return {"changed": True, "rolled_back": False, "msg": "Check mode: would roll back guard %s." % self.paths.id}
        won, decision = claim(self.paths, ROLLBACK, "rollback action", reason or "rollback requested")
        if not won:
            if decision.get("decision") == CONFIRMED:
                raise ModuleError(
                    "Guard %s was already confirmed (%s); there is nothing to roll back." % (self.paths.id, decision.get("at")),
                    id=self.paths.id,
                    confirmed=True,
                )
            return self._await_result(state, decision)
        return self._roll_back(state, decision)

    def _deadline(self, state: GuardState) -> float | None:
        """When the watcher rolls back: recorded by it, or known from the start signal; None before the countdown."""
        if state.watcher is not None and state.watcher.deadline_boottime:
            return state.watcher.deadline_boottime
        go = read_json(self.paths.go)
        return go["at_boottime"] + state.timeout if go else None

    # status -----------------------------------------------------------------
    def status(self, wait: float = 0) -> dict[str, Any]:
        """What the guard knows, including the last outcome.

        While it is armed and its watcher has not started yet, or a decision has been
        taken and its outcome is not recorded yet, wait up to ``wait`` seconds for that.
        """
        state = read_state(self.paths.state)
        end = self.clock() + wait
        while state is not None and (not watcher_alive(state) or os.path.exists(self.paths.decision)) and self.clock() < end:
            self.sleep(self.poll)
            state = read_state(self.paths.state)
        result = read_json(self.paths.result)
        out: dict[str, Any] = {"changed": False, "id": self.paths.id, "armed": state is not None, "watching": False, "last": result}
        if state is not None:
            out["watching"] = watcher_alive(state)
            out["description"] = state.description
            out["armed_at"] = state.armed_at
            deadline = self._deadline(state)
            if deadline:
                out["remaining"] = round(deadline - self.clock(), 3)
            out["decision"] = read_json(self.paths.decision)
        return out

    # outcomes ---------------------------------------------------------------
    def _roll_back(self, state: GuardState, decision: Mapping[str, Any]) -> dict[str, Any]:
        errors: list[str] = []
        runtime = None
        if state.runtime is not None:
            try:
                runtime = self.runtime.restore(state.runtime)
            except Exception as exc:  # restore the files whatever happened to the links
                errors.append("runtime state: %s" % exc)
        try:
            files = restore_files(self.module, state.files or [])
        except Exception as exc:
            files = []
            errors.append("files: %s" % exc)
        errors.extend("%s: %s" % (item["path"], item["error"]) for item in files if item["action"] == "failed")
        what = state.description or "the guarded change"
        msg = "Rolled back %s (%s): restored the previous %s at %s." % (
            what,
            decision.get("reason"),
            " and ".join(x for x in ("runtime network state" if state.runtime is not None else "", "files" if state.files else "") if x) or "state",
            wall_clock(),
        )
        if errors:
            msg += " Some parts could not be restored: %s." % "; ".join(errors)
        return self._finish(state, decision, confirmed=False, rolled_back=True, msg=msg, restored_files=files, restored_runtime=runtime, errors=errors)

    def _finish(
        self, state: GuardState, decision: Mapping[str, Any], confirmed: bool, rolled_back: bool = False, waited: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "id": self.paths.id,
            "description": state.description,
            "confirmed": confirmed,
            "rolled_back": rolled_back,
            "decision": decision.get("decision"),
            "decided_by": decision.get("by"),
            "reason": decision.get("reason"),
            "decision_at": decision.get("at"),
            "armed_at": state.armed_at,
            "arming": state.arming,
            "finished_at": wall_clock(),
        }
        if waited is not None:
            result["waited"] = round(max(waited, 0), 3)
        result.update(extra)
        if "msg" not in result:
            result["msg"] = "Confirmed %s." % (state.description or "the guarded change")
        write_json(self.paths.result, result)
        unlink(self.paths.state)
        unlink(self.paths.decision)
        unlink(self.paths.go)
        return dict(result, changed=rolled_back)


# -- the runtime network state (glue over _kernel_snapshot and _kernel_apply) --


def kernel_layers() -> tuple[ModuleType, ModuleType, ModuleType]:
    """_kernel_snapshot, _kernel_apply and _dhcp_client, imported on first use.

    Only a runtime snapshot (arm) and a restore need them; status and confirm
    do not, and AnsiballZ compiles every imported file on each run. The
    snapshot at arm imports all three, so the detached watcher has them
    loaded before the module's AnsiballZ files are gone.
    """
    from ansible_collections.kvmhost.bridging.plugins.module_utils import _dhcp_client, _kernel_apply, _kernel_snapshot

    return _kernel_snapshot, _kernel_apply, _dhcp_client


class NetlinkRuntime(Runtime):
    """The runtime network state, read and restored over netlink with _kernel_apply's session and applier."""

    def __init__(self, interfaces: Iterable[str] | None = (), session: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.interfaces = tuple(validate_ifname(name, "interfaces") for name in interfaces or ())
        self.session = session

    def snapshot(self) -> dict[str, Any]:
        ks, _ka, dc = kernel_layers()
        snapshot = ks.read_snapshot()
        clients = dc.find_clients(list(snapshot.links))
        return {"interfaces": list(self.interfaces), "snapshot": ks.snapshot_to_json(snapshot), "dhcp_clients": [list(c.argv) for c in clients]}

    def restore(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        """Apply plan_restore(); go on after a failed step. Return the steps done; raise listing the ones that failed."""
        ks, ka, dc = kernel_layers()
        wanted = ks.snapshot_from_json(snapshot["snapshot"])
        interfaces = snapshot.get("interfaces") or ()
        done: list[str] = []
        failed: list[str] = []
        now = ks.read_snapshot()
        stops: list[Step] = []
        starts: list[Step] = []
        if snapshot.get("dhcp_clients") is not None:  # a snapshot from before the guard covered the DHCP clients has none
            names = ka.restore_scope(wanted, now, interfaces)
            stops, starts = ka.plan_client_restore(snapshot["dhcp_clients"], dc.find_clients(sorted(names)), names)
        with (self.session or ka.iproute_session)() as ipr:
            applier = ka.KernelApplier(ipr)
            for step in stops + ka.plan_restore(wanted, now, interfaces) + starts:
                try:
                    applier.run(step.op, step.args)
                    done.append(step.description)
                except Exception as exc:  # restore the rest whatever failed
                    failed.append("%s: %s" % (step.description, ka.describe_error(exc)))
            scope = ka.restore_scope(wanted, wanted, interfaces)
            left: list[str] = ks.state_differences(ks.runtime_state(wanted, scope), ks.runtime_state(ks.read_snapshot(), scope))
        if failed:
            raise RestoreError(done, failed, left)
        return {"steps": done, "differences": left}


class RestoreError(Exception):
    def __init__(self, done: list[str], failed: list[str], left: list[str]) -> None:
        super().__init__("%s (done: %s)" % ("; ".join(failed), "; ".join(done) or "nothing"))
        self.done = done
        self.failed = failed
        self.left = left

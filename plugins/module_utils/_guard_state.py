# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guard's state directory: ids and paths, the state-file records and the one decision.

Paths names the files of one guard id; check_state_dir refuses a directory
that another user could write to; claim() takes the one decision of an
arming with link(2); GuardState and Watcher are the records of the state
file (read_state), and pid_alive/process_start/watcher_alive tell whether
the recorded watcher still runs. Plain file handling, testable without root;
_guard builds the guard itself on top of it.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import json
import os
import re
import stat
import tempfile
import time
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import atomic_write, read_bytes, remove_file

if TYPE_CHECKING:
    from collections.abc import Mapping

STATE_DIR = "/run/kvmhost-bridging"
FORMAT = 1
POLL_INTERVAL = 0.1
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
# timeout and start_within: at most a day (a watcher must be able to count it
# with floats and time.sleep, and a guard left armed that long is a mistake).
MAX_SECONDS = 86400

CONFIRMED = "confirmed"
ROLLBACK = "rollback"


def boottime() -> float:
    """Seconds since boot, counting suspend; the same clock for every process."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def wall_clock() -> str:
    """Local time with its offset, for messages."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def check_id(guard_id: str | None) -> str:
    if guard_id is None or not ID_PATTERN.match(guard_id):
        raise ModuleError("Invalid guard id %r: use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit." % (guard_id,))
    return guard_id


def netns_scope() -> str | None:
    """The network namespace this process runs in, as ``net<inode>``, or None where /proc cannot say.

    The runtime state a guard protects belongs to a network namespace, while
    /run may be shared between namespaces (containers, ``ip netns exec``); the
    scope keeps their guards apart.
    """
    try:
        return "net%d" % os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None


class Paths:
    """The files of one guard id (in one network namespace) in the state directory."""

    def __init__(self, state_dir: str, guard_id: str, scope: str | None = None) -> None:
        check_id(guard_id)
        check_state_dir(state_dir)
        self.dir = state_dir
        self.id = guard_id
        base = os.path.join(state_dir, "guard-%s%s" % (guard_id, "." + scope if scope else ""))
        self.state = base + ".json"
        self.decision = base + ".decision"
        self.go = base + ".go"
        self.result = base + ".result.json"
        self.watcher_error = base + ".watcher-error"


# -- small file helpers -------------------------------------------------------


def check_state_dir(path: str) -> None:
    """Refuse a state directory that another user owns or can write to.

    Whoever can create files there can plant a ``decision`` and decide the
    guard's outcome. A directory that does not exist yet is fine: ensure_dir
    creates it 0700.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ModuleError("Cannot check the guard's state directory %s: %s." % (path, exc.strerror)) from exc
    problems = []
    if not stat.S_ISDIR(info.st_mode):
        problems.append("it is not a directory")
    if info.st_uid != os.geteuid():
        problems.append("it is owned by uid %d, not by the user running the guard (uid %d)" % (info.st_uid, os.geteuid()))
    if info.st_mode & 0o022:
        problems.append("its mode %04o lets %s write to it" % (stat.S_IMODE(info.st_mode), "others" if info.st_mode & 0o002 else "its group"))
    if problems:
        raise ModuleError(
            "The guard's state directory %s is not safe: %s; another user could decide the guard's outcome there. "
            "Use a directory of your own with mode 0700 (the default %s is created so)." % (path, "; ".join(problems), STATE_DIR)
        )


def check_seconds(name: str, value: object, low: int, note: str = "") -> int:
    """Refuse a number of seconds outside ``low``..MAX_SECONDS (a day); the watcher counts them with floats."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SECONDS:
        raise ModuleError("%s must be %d to %d seconds (a day)%s; got %s." % (name, low, MAX_SECONDS, note, value))
    return value


def ensure_dir(path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ModuleError("Cannot create the guard's state directory %s: %s." % (path, exc.strerror)) from exc
    check_state_dir(path)


def read_json(path: str) -> Any:
    """The parsed JSON of ``path``, or None when it does not exist (or is being written)."""
    data = read_bytes(path)
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        return None


def write_json(path: str, value: Mapping[str, Any]) -> None:
    """Write JSON to ``path`` atomically with _fileio.atomic_write, mode 0600."""
    atomic_write(None, path, json.dumps(value, sort_keys=True).encode("utf-8"), new_mode=0o600)


def unlink(path: str) -> None:
    """Remove one of the guard's files; a missing one is fine."""
    remove_file(None, path)


def claim(paths: Paths, decision: str, by: str, reason: str | None = None) -> tuple[bool, dict[str, Any]]:
    """Take the one decision of this arming; return (won, the decision record).

    The record is written to a temp file first and then hard-linked to the
    decision's name: link(2) fails with EEXIST when a decision exists, and
    whoever reads the decision file sees it complete.
    """
    record = {"decision": decision, "by": by, "at": wall_clock(), "at_boottime": boottime(), "reason": reason}
    fd, tmp = tempfile.mkstemp(prefix=".decision.", dir=paths.dir)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, paths.decision)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise ModuleError("Cannot record the guard's decision in %s: %s." % (paths.decision, exc.strerror)) from exc
            return False, read_json(paths.decision) or {"decision": "unknown"}
        return True, record
    finally:
        unlink(tmp)


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % int(pid)) as handle:
            stat = handle.read()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of its stat), or None."""
    try:
        with open("/proc/%d/stat" % int(pid)) as handle:
            return int(handle.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


@dataclasses.dataclass
class Watcher:
    """The watcher's process, as it records itself in the state file."""

    pid: int
    start: int | None = None  # process_start(pid): a PID reused by another process does not count
    started_boottime: float | None = None
    deadline_boottime: float | None = None  # None until the countdown starts


@dataclasses.dataclass
class GuardState:
    """The state file of an armed guard (``guard-<id>.json``)."""

    format: int = FORMAT
    id: str = ""
    description: str | None = None
    timeout: float = 0
    start_within: float = 0
    armed_at: str | None = None
    armed_boottime: float = 0.0
    arming: str = ""  # a random id of this arming; the outcome carries it
    files: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # capture_files()
    runtime: Any = None  # Runtime.snapshot(), None when the runtime is not guarded
    watcher: Watcher | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GuardState:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        watcher = values.get("watcher")
        if watcher:
            values["watcher"] = Watcher(**{key: value for key, value in watcher.items() if key in _WATCHER_FIELDS})
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_WATCHER_FIELDS = frozenset(f.name for f in dataclasses.fields(Watcher))


def read_state(path: str) -> GuardState | None:
    """The GuardState in ``path``, or None when there is none."""
    data = read_json(path)
    return None if data is None else GuardState.from_json(data)


def watcher_alive(state: GuardState | None) -> bool:
    """Whether the watcher recorded in ``state`` still runs (same PID and same start time)."""
    watcher = state.watcher if state is not None else None
    if watcher is None or not watcher.pid:
        return False
    return pid_alive(watcher.pid) and process_start(watcher.pid) == watcher.start

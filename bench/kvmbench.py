"""Infrastructure of the benchmarks: statistics, labs, Ansible runs with task timings.

Nothing here asserts on a time. Times are CLOCK_MONOTONIC seconds.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.dirname(os.path.abspath(sys.executable))
PYTHON = os.path.join(BIN, "python")
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))

import kvmblab  # noqa: E402

CACHE = os.environ.get("KVMB_BENCH_CACHE", os.path.expanduser("~/.cache/kvmhost-bench"))
COLLECTIONS = os.environ.get("KVMB_COLLECTIONS", os.path.expanduser("~/.ansible/collections"))
MITOGEN_VERSION = "0.3.54"


# ------------------------------------------------------------------ statistics


def summary(values):
    """Median, min, max and count of ``values`` (None when empty)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def linear_fit(xs, ys):
    """Least-squares line through (xs, ys): intercept, slope and R squared."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx else 0.0
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys))
    return {"intercept": intercept, "slope": slope, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def growth_exponent(xs, ys):
    """How the cost above the smallest size grows: the slope of log(y - y0) against log(x - x0).

    1 is linear, 2 quadratic. None with fewer than three sizes or when a cost
    is not above the smallest size's (noise at small sizes).
    """
    if len(xs) < 3:
        return None
    pts = [(math.log(x - xs[0]), math.log(y - ys[0])) for x, y in zip(xs[1:], ys[1:]) if y > ys[0]]
    if len(pts) < 2:
        return None
    return linear_fit([p[0] for p in pts], [p[1] for p in pts])["slope"]


def fmt_s(value):
    if value is None:
        return "-"
    if value < 0.1:
        return "%.1f ms" % (value * 1000)
    return "%.2f s" % value


def fmt_x(value):
    return "-" if value is None else "%.2fx" % value


# ------------------------------------------------------------------ the machine


def _first_line(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def loadavg():
    with open("/proc/loadavg") as handle:
        return [float(x) for x in handle.read().split()[:3]]


def machine():
    """What the figures were measured on."""
    mem = None
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    cpu = None
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = None
    with contextlib.suppress(OSError), open("/etc/os-release") as handle:
        for line in handle:
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    versions = subprocess.run(
        [PYTHON, "-c", "import ansible.release, pyroute2; print(ansible.release.__version__, pyroute2.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": mem,
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "ansible_core": versions[0] if versions else None,
        "pyroute2": versions[1] if len(versions) > 1 else None,
        "openssh": _first_line(["ssh", "-V"]) or subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip(),
        "loadavg_at_start": loadavg(),
    }


# ------------------------------------------------------------------ labs


@contextlib.contextmanager
def lab_up(lab_id, hosts, stock_firewall=True, log=print, networkmanager=False):
    """A fresh lab with ``hosts`` hosts, torn down afterwards whatever happens.

    With ``networkmanager`` every host runs real NetworkManager on keyfile
    profiles (tests/lab/kvmb_nm.py; eth1's profile has no address, as the
    network-scripts hosts' ifcfg-eth1 has none).
    """
    lab = kvmblab.Lab(lab_id)
    lab.down()  # whatever an earlier, killed run left
    try:
        start = time.monotonic()
        if networkmanager:
            lab.up(hosts=0)
            for _i in range(hosts):
                lab.add_host(stock_firewall=stock_firewall, networkmanager=True)
        else:
            lab.up(hosts=hosts, stock_firewall=stock_firewall)
        log("  lab %d: %d %shosts up in %.1f s" % (lab_id, hosts, "NetworkManager " if networkmanager else "", time.monotonic() - start))
        yield lab
    finally:
        lab.down()


# ------------------------------------------------------------------ NetworkManager's own log


def nm_log_events(text):
    """(timestamp, kind, device or None, line) of the lines of a NetworkManager log that time its work.

    kinds: checkpoint-create, checkpoint-adjust, checkpoint-destroy, connections-load,
    connection-activate, activation-start, activation-done.
    """
    events = []
    for line in text.splitlines():
        lb, rb = line.find("["), line.find("]")
        if lb < 0 or rb < lb:
            continue
        try:
            stamp = float(line[lb + 1 : rb])
        except ValueError:
            continue
        rest = line[rb + 1 :].strip()
        device = None
        if rest.startswith("device (") and ")" in rest:
            device = rest[len("device (") : rest.index(")")]
        kind = None
        if 'op="checkpoint-create"' in rest:
            kind = "checkpoint-create"
        elif 'op="checkpoint-adjust-rollback-timeout"' in rest:
            kind = "checkpoint-adjust"
        elif 'op="checkpoint-destroy"' in rest:
            kind = "checkpoint-destroy"
        elif 'op="connections-load"' in rest:
            kind = "connections-load"
        elif 'op="connection-activate"' in rest:
            kind = "connection-activate"
        elif device and "Activation: starting connection" in rest:
            kind = "activation-start"
        elif device and "Activation: successful" in rest:
            kind = "activation-done"
        if kind:
            events.append((stamp, kind, device, rest))
    return events


def nm_log_timings(text):
    """What NetworkManager itself spent on one host's bridging, from its log (seconds), or None.

    - activation: the sum over devices of each activation's start to its success
      (NetworkManager's own work: the bridge when its profile loads, the port on `nmcli connection up`);
    - under_checkpoint: checkpoint-create to checkpoint-destroy (the time the host ran
      with a pending rollback, most of it waiting for Ansible's next task);
    - create_to_load, load_to_adjust, adjust_to_activate, activate_to_destroy: the steps
      between those, as the play drove them.
    """
    events = nm_log_events(text)
    created = next((stamp for stamp, kind, _device, _line in events if kind == "checkpoint-create"), None)
    if created is None:
        return None
    first = {}  # the first event of each kind from the checkpoint on (the lab's own activations come before)
    for stamp, kind, _device, _line in events:
        if stamp >= created:
            first.setdefault(kind, stamp)
    activation, starts = 0.0, {}
    for stamp, kind, device, _line in events:
        if stamp < created:
            continue
        if kind == "activation-start":
            starts[device] = stamp
        elif kind == "activation-done" and device in starts:
            activation += stamp - starts.pop(device)
    out = {"activation": activation}

    def gap(a, b):
        return first[b] - first[a] if a in first and b in first else None

    out["under_checkpoint"] = gap("checkpoint-create", "checkpoint-destroy")
    out["create_to_load"] = gap("checkpoint-create", "connections-load")
    out["load_to_adjust"] = gap("connections-load", "checkpoint-adjust")
    out["adjust_to_activate"] = gap("checkpoint-adjust", "connection-activate")
    out["activate_to_destroy"] = gap("connection-activate", "checkpoint-destroy")
    return out


class ChildClock:
    """Wall time and the CPU time (user + sys) of the child processes waited for inside the block.

    The CPU time of a process is far less disturbed by other load on the
    machine than its wall time.
    """

    def __enter__(self):
        self._wall = time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._cpu = usage.ru_utime + usage.ru_stime
        return self

    def __exit__(self, *exc):
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall = time.monotonic() - self._wall
        self.cpu = usage.ru_utime + usage.ru_stime - self._cpu
        return False


def host_python_run(host, argv, timeout=600, python=True):
    """Run the managed hosts' Python with ``argv`` (or ``argv`` itself) inside ``host``.

    Return (wall seconds, the last line of stdout parsed as JSON, or None).
    """
    start = time.monotonic()
    proc = host.run([PYTHON, *argv] if python else argv, check=False, timeout=timeout)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise kvmblab.LabError("%s failed in %s (%s): %s%s" % (" ".join(argv), host.name, proc.returncode, proc.stdout, proc.stderr))
    out = None
    for line in reversed((proc.stdout or "").splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out = json.loads(line)
            break
    return wall, out


def timed_host_run(host, argv, input=None, timeout=600):
    start = time.monotonic()
    host.run(argv, input=input, timeout=timeout)
    return time.monotonic() - start


# ------------------------------------------------------------------ Ansible configurations


def mitogen_dir():
    return os.path.join(CACHE, "mitogen-%s" % MITOGEN_VERSION)


def ensure_mitogen(log=print):
    """Install Mitogen from PyPI into the bench cache (not into .venv); return (path, None) or (None, why not)."""
    target = mitogen_dir()
    if not os.path.isdir(os.path.join(target, "ansible_mitogen")):
        os.makedirs(CACHE, exist_ok=True)
        log("  installing mitogen==%s into %s" % (MITOGEN_VERSION, target))
        proc = subprocess.run(
            [PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, "mitogen==%s" % MITOGEN_VERSION],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            return None, "pip could not install mitogen==%s: %s" % (MITOGEN_VERSION, (proc.stderr or proc.stdout).strip()[-500:])
    return target, None


def config_env(name):
    """Environment of one Ansible configuration: pipelining, no-pipelining or mitogen."""
    if name == "pipelining":
        return {"ANSIBLE_PIPELINING": "True"}
    if name == "no-pipelining":
        return {"ANSIBLE_PIPELINING": "False"}
    if name == "mitogen":
        path = mitogen_dir()
        return {
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_STRATEGY": "mitogen_linear",
            "ANSIBLE_STRATEGY_PLUGINS": os.path.join(path, "ansible_mitogen", "plugins", "strategy"),
            "PYTHONPATH": path + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
    raise ValueError(name)


# ------------------------------------------------------------------ playbook runs


# Actions that run on the controller only: no round trip to the managed host.
LOCAL_ACTIONS = {
    "set_fact",
    "debug",
    "fail",
    "assert",
    "meta",
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "validate_argument_spec",
    "add_host",
    "group_by",
    "include_vars",
    "set_stats",
    "pause",
}


def is_local_action(action):
    return (action or "").rsplit(".", 1)[-1] in LOCAL_ACTIONS


@dataclass
class TaskTiming:
    name: str
    uuid: str
    start: float
    span: float = 0.0  # start of this task to the start of the next one (or to the stats)
    results: dict = field(default_factory=dict)  # host -> result record
    items: list = field(default_factory=list)  # loop item result times, in order
    action: str | None = None
    retries: int = 0  # failed attempts of an `until` loop, over all hosts
    ssh_bytes: int | None = None  # size of the SSH operations' log at the task's start
    ssh_ops: int | None = None  # ssh, sftp and scp processes the task started, over all hosts (when counted)

    @property
    def label(self):
        return self.name.rsplit(" #", 1)[0]

    def statuses(self):
        return {r["status"] for r in self.results.values()}

    def changed(self):
        return sum(1 for r in self.results.values() if r.get("changed"))

    def round_trips(self):
        """Executions on managed hosts, over all hosts: a result (or each loop item) and each retry.

        0 for actions that run on the controller only. `wait_for_connection` counts once
        although it may try more than once.
        """
        if is_local_action(self.action):
            return 0
        trips = 0
        for res in self.results.values():
            if res["status"] == "skipped":  # a loop skipped as a whole reports its items, none of which ran
                continue
            trips += res.get("items") or 1
        return trips + self.retries

    def profile(self):
        """A JSON-able summary of the task: its cost, what ran where, and the round trips."""
        statuses = {}
        for res in self.results.values():
            key = "changed" if res["status"] == "ok" and res.get("changed") else res["status"]
            statuses[key] = statuses.get(key, 0) + 1
        done = sorted(res["t"] - self.start for res in self.results.values() if res["status"] != "skipped")
        return {
            "name": self.name,
            "action": self.action,
            "span": round(self.span, 3),
            "statuses": statuses,
            "round_trips": self.round_trips(),
            "retries": self.retries,
            "ssh_ops": self.ssh_ops,
            # when the first and the last host's result came, counted from the task's start
            "first_result": round(done[0], 3) if done else None,
            "last_result": round(done[-1], 3) if done else None,
        }

    def item_durations(self):
        """Seconds each loop item took (the first counted from the task's start)."""
        times = [self.start, *self.items]
        return [b - a for a, b in zip(times, times[1:])]


@dataclass
class PlayRun:
    rc: int
    wall: float
    tasks: list
    stats: dict
    output: str
    first_event: float | None = None
    last_event: float | None = None
    controller_cpu: float | None = None  # user+sys seconds of ansible-playbook and its children (workers, ssh)
    ssh_ops: dict | None = None  # {"ssh": n, "ssh-control": n, "sftp": n, "scp": n} over the run, when counted

    def by_label(self, label):
        return [t for t in self.tasks if t.label == label]

    def spans(self, label):
        return [t.span for t in self.by_label(label)]

    def changed_total(self):
        return sum(s.get("changed", 0) for s in self.stats.values())

    def profile(self):
        """Every task's profile (TaskTiming.profile), in the order the tasks ran."""
        return [t.profile() for t in self.tasks]

    def round_trips_per_host(self):
        hosts = len(self.stats) or 1
        return sum(t.round_trips() for t in self.tasks) / hosts

    def ssh_ops_per_host(self):
        """SSH processes (connections' commands, file transfers, control commands) per host, or None."""
        if self.ssh_ops is None:
            return None
        return sum(self.ssh_ops.values()) / (len(self.stats) or 1)

    def failures(self):
        bad = []
        for task in self.tasks:
            for host, res in task.results.items():
                if res["status"] in ("failed", "unreachable"):
                    bad.append("%s on %s: %s" % (task.name, host, res.get("msg", "")[:300]))
        return bad


SSH_WRAPPER = """#!/bin/sh
# kvmb bench: note one line per SSH operation, then run the real program.
case " $* " in *" -O "*) kind=%(name)s-control ;; *) kind=%(name)s ;; esac
echo "$kind" >> "$KVMB_BENCH_SSH_LOG"
exec %(real)s "$@"
"""


def ssh_wrappers(directory):
    """sh wrappers of ssh, sftp and scp that note each run in $KVMB_BENCH_SSH_LOG; return their env settings."""
    env = {}
    os.makedirs(directory, exist_ok=True)
    for name in ("ssh", "sftp", "scp"):
        real = shutil.which(name)
        if not real:
            continue
        path = os.path.join(directory, name)
        with open(path, "w") as handle:
            handle.write(SSH_WRAPPER % {"name": name, "real": real})
        os.chmod(path, 0o700)
        env["ANSIBLE_%s_EXECUTABLE" % name.upper()] = path
    return env


def _ssh_counts(path, tasks, end_bytes):
    """Count the wrappers' log lines per task (between its start and the next task's) and in all."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    ends, offset = [], 0
    for line in data.splitlines(keepends=True):
        offset += len(line)
        ends.append(offset)

    def lines_before(size):
        return sum(1 for e in ends if e <= size)

    marks = [t.ssh_bytes for t in tasks] + [end_bytes if end_bytes is not None else len(data)]
    for task, a, b in zip(tasks, marks, marks[1:]):
        if a is not None and b is not None:
            task.ssh_ops = lines_before(b) - lines_before(a)
    counts = {}
    for line in data.decode("utf-8", "replace").split():
        counts[line] = counts.get(line, 0) + 1
    return counts


def _stop_control_masters(cp_dir):
    """Stop the ssh ControlPersist masters this run left (they are this run's processes)."""
    for sock in glob.glob(os.path.join(cp_dir, "*")):
        subprocess.run(["ssh", "-o", "ControlPath=" + sock, "-O", "exit", "kvmb-bench"], capture_output=True, check=False, timeout=30)


class Ansible:
    """ansible-playbook runs against a lab, timed by the kvmb_bench_timer callback.

    Every run has its own ssh ControlPath directory and stops its masters at the
    end, so every run starts cold, as an AWX job does.
    """

    def __init__(self, workdir):
        self.workdir = workdir

    def env(self, config, record, cp_dir, ssh_log=None):
        env = dict(os.environ)
        env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
        env.update(
            {
                "ANSIBLE_HOST_KEY_CHECKING": "False",
                "ANSIBLE_CALLBACKS_ENABLED": "kvmb_bench_timer",
                "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
                "ANSIBLE_DEPRECATION_WARNINGS": "False",
                "ANSIBLE_SYSTEM_WARNINGS": "False",
                "ANSIBLE_NOCOLOR": "True",
                "ANSIBLE_ROLES_PATH": os.path.join(ROOT, "roles"),
                "ANSIBLE_SSH_CONTROL_PATH_DIR": cp_dir,
                "KVMB_BENCH_RECORD": record,
            }
        )
        env.update(config_env(config))
        if ssh_log and config != "mitogen":  # Mitogen keeps its own connections: nothing to count per task
            env["KVMB_BENCH_SSH_LOG"] = ssh_log
            env.update(ssh_wrappers(os.path.join(os.path.dirname(ssh_log), "bin")))
        return env

    def playbook(self, playbook, inventory, config="pipelining", extra_vars=None, forks=5, limit=None, timeout=1800, count_ssh=False):
        """Run a playbook (a path, or YAML/JSON text); return a PlayRun.

        With ``count_ssh`` (not under Mitogen) every ssh, sftp and scp process Ansible starts is
        counted, per task and in all (a wrapper script per program: about a millisecond each).
        """
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            if "\n" in playbook or not os.path.exists(playbook):
                path = os.path.join(tmp, "play.yml")
                with open(path, "w") as handle:
                    handle.write(playbook)
            else:
                path = playbook
            record = os.path.join(tmp, "record.jsonl")
            ssh_log = os.path.join(tmp, "ssh-ops.log") if count_ssh and config != "mitogen" else None
            cp_dir = tempfile.mkdtemp(prefix="cp", dir="/tmp")  # short: unix socket paths are limited to 108 bytes
            argv = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, "-f", str(forks), path]
            if extra_vars:
                vars_file = os.path.join(tmp, "vars.json")
                with open(vars_file, "w") as handle:
                    json.dump(extra_vars, handle)
                argv += ["-e", "@" + vars_file]
            if limit:
                argv += ["--limit", limit]
            try:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.monotonic()
                proc = subprocess.run(
                    argv,
                    env=self.env(config, record, cp_dir, ssh_log),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    check=False,
                    cwd=tmp,
                )
                wall = time.monotonic() - start
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            finally:
                _stop_control_masters(cp_dir)
                shutil.rmtree(cp_dir, ignore_errors=True)
            events = []
            if os.path.exists(record):
                with open(record) as handle:
                    events = [json.loads(line) for line in handle]
            run = self._parse(proc.returncode, wall, events, proc.stdout)
            if ssh_log:
                end = next((e.get("ssh_bytes") for e in events if e["type"] == "stats"), None)
                run.ssh_ops = _ssh_counts(ssh_log, run.tasks, end)
        run.controller_cpu = cpu
        return run

    @staticmethod
    def _parse(rc, wall, events, output):
        tasks, by_uuid, stats, end = [], {}, {}, None
        for event in events:
            if event["type"] == "task_start":
                task = TaskTiming(event["task"], event["uuid"], event["t"], action=event.get("action"), ssh_bytes=event.get("ssh_bytes"))
                if tasks and tasks[-1].span == 0.0:
                    tasks[-1].span = event["t"] - tasks[-1].start
                tasks.append(task)
                by_uuid[event["uuid"]] = task
            elif event["type"] == "result":
                task = by_uuid.get(event["uuid"])
                if task is not None:
                    task.results[event["host"]] = event
            elif event["type"] == "retry":
                task = by_uuid.get(event["uuid"])
                if task is not None:
                    task.retries += 1
            elif event["type"] == "item":
                task = by_uuid.get(event["uuid"])
                if task is not None:
                    task.items.append(event["t"])
            elif event["type"] == "stats":
                stats = event["stats"]
                end = event["t"]
        if tasks and tasks[-1].span == 0.0 and end is not None:
            tasks[-1].span = end - tasks[-1].start
        first = events[0]["t"] if events else None
        return PlayRun(rc=rc, wall=wall, tasks=tasks, stats=stats, output=output, first_event=first, last_event=end)

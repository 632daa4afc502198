# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: timestamps of task starts and results, as JSON lines.

The file is named by the environment variable KVMB_BENCH_RECORD. Times are
CLOCK_MONOTONIC seconds (time.monotonic), the clock the harness uses too, so a
task's cost is the time from its start to the start of the next task (what
profile_tasks reports), and the harness can relate it to the process wall time.
Not shipped with the collection: bench/run.py points ANSIBLE_CALLBACK_PLUGINS here.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: kvmb_bench_timer
type: aggregate
short_description: Record task start and result times for the benchmarks
description:
  - Appends one JSON object per task start (with its action), task result, loop item and retry of an
    C(until) loop, and one with the play stats,
    to the file named by E(KVMB_BENCH_RECORD).
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kvmb_bench_timer"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("KVMB_BENCH_RECORD")
        self._ssh_log = os.environ.get("KVMB_BENCH_SSH_LOG")
        self._handle = None

    def _write(self, record):
        if not self._path:
            return
        record["t"] = time.monotonic()
        if self._ssh_log and record["type"] in ("task_start", "stats"):
            # How far the harness's ssh/sftp/scp wrappers' log has grown: the SSH operations between two task
            # starts belong to the first task (the linear strategy ends a task on every host before the next).
            try:
                record["ssh_bytes"] = os.path.getsize(self._ssh_log)
            except OSError:
                record["ssh_bytes"] = 0
        if self._handle is None:
            self._handle = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the whole run
        self._handle.write(json.dumps(record, default=str) + "\n")
        self._handle.flush()

    def v2_playbook_on_start(self, playbook):
        self._write({"type": "playbook_start"})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write({"type": "task_start", "task": task.get_name(), "uuid": task._uuid, "action": task.action})

    def v2_playbook_on_handler_task_start(self, task):
        self._write({"type": "task_start", "task": task.get_name(), "uuid": task._uuid, "action": task.action, "handler": True})

    def _result(self, result, status):
        data = result._result
        record = {
            "type": "result",
            "status": status,
            "host": result._host.get_name(),
            "uuid": result._task._uuid,
            "task": result._task.get_name(),
            "changed": bool(data.get("changed", False)),
        }
        if status in ("failed", "unreachable"):
            record["msg"] = str(data.get("msg", ""))[:2000]
        if "results" in data and isinstance(data["results"], list):
            record["items"] = len(data["results"])
        self._write(record)

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_runner_retry(self, result):
        # An `until` loop's failed attempt: one more round trip to the host (async_status polling, for one).
        self._write({"type": "retry", "host": result._host.get_name(), "uuid": result._task._uuid})

    def _item(self, result, status):
        self._write({"type": "item", "status": status, "host": result._host.get_name(), "uuid": result._task._uuid})

    def v2_runner_item_on_ok(self, result):
        self._item(result, "ok")

    def v2_runner_item_on_failed(self, result):
        self._item(result, "failed")

    def v2_runner_item_on_skipped(self, result):
        self._item(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        self._write({"type": "stats", "stats": {h: stats.summarize(h) for h in hosts}})
        if self._handle is not None:
            self._handle.close()
            self._handle = None

# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: write every task result and the play stats as JSON lines.

The file is named by the environment variable KVMB_RECORD_FILE. The integration
tests read it to assert on results; it is not shipped with the collection.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: kvmb_record
type: aggregate
short_description: Record task results as JSON lines for the integration tests
description:
  - Appends one JSON object per task result, and one with the play stats, to the file named by E(KVMB_RECORD_FILE).
options: {}
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kvmb_record"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("KVMB_RECORD_FILE")

    def _write(self, record):
        if not self._path:
            return
        with open(self._path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    def _result(self, result, status):
        data = dict(result._result)
        if status == "failed":
            data["failed"] = True
        elif status == "unreachable":
            data["unreachable"] = True
        self._write({"type": "result", "status": status, "host": result._host.get_name(), "task": result._task.get_name(), "result": data})

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        self._write({"type": "stats", "stats": {h: stats.summarize(h) for h in hosts}})

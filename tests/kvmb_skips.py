"""pytest plugin of scripts/test.sh: count each stage's tests, and fail a stage that skips unlisted tests or runs none.

Loaded with ``-p kvmb_skips`` (tests/ on PYTHONPATH). The one list of allowed skips is
tests/skips.txt; a line there names a test (a pytest node id, fnmatch patterns
allowed) and, after `` | ``, why skipping it is right on the machines this suite
runs on. Any other skip fails the run, and so does a run in which no test passed
or failed (everything skipped or deselected, or nothing collected).

With KVMB_STAGE_COUNTS set to a path, the counts are written there as
``passed failed skipped`` for scripts/test.sh to print.

Under pytest-xdist only the controller counts: every worker's test reports
reach it, and a module skipped at collection arrives once, though each worker
collected it (tests/unit/test_kvmb_skips.py runs the gate on two workers).
"""

from __future__ import annotations

import fnmatch
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SKIPS_FILE = os.path.join(HERE, "skips.txt")


def load_allowed(path=SKIPS_FILE):
    """The allowed skips as (pattern, reason) pairs; a line without a reason is an error."""
    allowed = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pattern, sep, reason = line.partition(" | ")
            if not sep or not pattern.strip() or not reason.strip():
                raise ValueError("%s line %d: write '<test id pattern> | <reason>'" % (path, number))
            allowed.append((pattern.strip(), reason.strip()))
    return allowed


def allowed_reason(nodeid, allowed):
    for pattern, reason in allowed:
        if fnmatch.fnmatchcase(nodeid, pattern):
            return reason
    return None


class SkipGate:
    def __init__(self, allowed):
        self.allowed = allowed
        self.passed = 0
        self.failed = 0
        self.skipped = []  # (nodeid, pytest's reason)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):
            self.passed += 1
        elif report.failed:
            self.failed += 1
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skipped.append((report.nodeid, reason))

    def pytest_collectreport(self, report):
        if report.failed:
            self.failed += 1
        elif report.skipped:  # a whole module skipped at import
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skipped.append((report.nodeid, reason))

    def problems(self):
        found = []
        unlisted = [(nodeid, reason) for nodeid, reason in self.skipped if allowed_reason(nodeid, self.allowed) is None]
        for nodeid, reason in unlisted:
            found.append("skipped, and not listed in %s: %s (%s)" % (os.path.relpath(SKIPS_FILE), nodeid, reason))
        if self.passed + self.failed == 0:
            found.append("no test ran: a stage that runs no test fails")
        return found

    def pytest_sessionfinish(self, session, exitstatus):
        if self.problems() and exitstatus == 0:
            session.exitstatus = 1
        path = os.environ.get("KVMB_STAGE_COUNTS")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("%d %d %d\n" % (self.passed, self.failed, len(self.skipped)))

    def pytest_terminal_summary(self, terminalreporter):
        write = terminalreporter.write_line
        listed = [(nodeid, allowed_reason(nodeid, self.allowed)) for nodeid, _reason in self.skipped]
        for nodeid, reason in listed:
            if reason is not None:
                write("allowed skip: %s (%s)" % (nodeid, reason))
        for problem in self.problems():
            write("SKIP GATE FAILED: " + problem, red=True)
        write("counts: %d passed, %d failed, %d skipped" % (self.passed, self.failed, len(self.skipped)))


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker: its reports reach the controller, which counts
        return
    config.pluginmanager.register(SkipGate(load_allowed()), "kvmb_skip_gate")

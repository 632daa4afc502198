"""The skip gate of scripts/test.sh (tests/kvmb_skips.py) under pytest-xdist, as the integration stage runs it.

Each case runs a small suite in a pytest of its own with ``-n 2 --dist loadfile``,
so that its files land on two workers, and reads the counts the gate writes.
"""

from __future__ import annotations

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PASSING = "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
FAILING = "def test_fails():\n    assert False\n"
SKIPPING = "import pytest\n\n\ndef test_passes():\n    pass\n\n\ndef test_skips():\n    pytest.skip('not here')\n"
MODULE_SKIP = "import pytest\n\npytest.skip('whole module', allow_module_level=True)\n\n\ndef test_never():\n    pass\n"


def run_gate(tmp_path, files):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (suite / name).write_text(text)
    counts = tmp_path / "counts"
    env = dict(os.environ, PYTHONPATH=TESTS, KVMB_STAGE_COUNTS=str(counts))
    env.pop("PYTEST_XDIST_WORKER", None)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "kvmb_skips",
            "-n", "2", "--dist", "loadfile", "-c", str(suite / "pytest.ini"), "--rootdir", str(suite), str(suite)]  # fmt: skip
    proc = subprocess.run(argv, cwd=str(suite), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False)
    output = proc.stdout.decode("utf-8", "replace")
    assert counts.exists(), output
    return proc.returncode, tuple(int(n) for n in counts.read_text().split()), output


def test_counts_add_up_across_workers_and_unlisted_skips_fail(tmp_path):
    files = {"test_a.py": PASSING, "test_b.py": SKIPPING, "test_c.py": MODULE_SKIP, "test_d.py": FAILING}
    rc, counts, output = run_gate(tmp_path, files)
    # Each report counted once on the controller, the module skip too, although every worker collected it.
    assert counts == (3, 1, 2), output
    assert rc == 1, output
    assert "counts: 3 passed, 1 failed, 2 skipped" in output
    assert "SKIP GATE FAILED: skipped, and not listed in" in output
    assert "test_b.py::test_skips (Skipped: not here)" in output
    assert "test_c.py (Skipped: whole module)" in output


def test_a_run_with_no_test_fails(tmp_path):
    rc, counts, output = run_gate(tmp_path, {"test_a.py": MODULE_SKIP.replace("test_never", "never")})
    assert rc != 0, output
    assert counts == (0, 0, 1), output
    assert "SKIP GATE FAILED: no test ran" in output

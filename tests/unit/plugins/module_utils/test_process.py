"""_process: a command with a time limit through a real AnsibleModule.run_command, and a detached program."""

from __future__ import annotations

import os
import signal
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from polling import until

from ansible_collections.kvmhost.bridging.plugins.module_utils import _process
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError


@pytest.fixture
def module():
    with patch_module_args({}):
        return AnsibleModule(argument_spec={}, supports_check_mode=True)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_run_bounded_returns_what_the_command_said(module):
    rc, out, err = _process.run_bounded(module, ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], 30)
    assert (rc, out, err) == (3, "out\n", "err\n")


def test_run_bounded_keeps_argv0_and_runs_the_executable(module):
    rc, out, _err = _process.run_bounded(module, ["kvmb-shown-name", "-c", 'echo "$0"'], 30, executable="/bin/sh")
    assert (rc, out) == (0, "kvmb-shown-name\n")


def test_run_bounded_does_not_expand_variables(module):
    rc, out, _err = _process.run_bounded(module, ["/bin/echo", "$HOME", "~"], 30)
    assert (rc, out) == (0, "$HOME ~\n")


def test_run_bounded_kills_a_command_past_its_limit(module, tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(_process.CommandTimeout, match="did not finish within 1s"):
        _process.run_bounded(module, ["/bin/sh", "-c", 'echo $$ > "$0"; exec sleep 60', str(pidfile)], 1)
    assert not _alive(int(pidfile.read_text()))


def test_start_detached_runs_the_command_line_in_a_session_of_its_own(tmp_path):
    marker = tmp_path / "started"
    script = (
        "import os, sys, time\n"
        "open(sys.argv[1] + '.tmp', 'w').write('%s %d' % (sys.orig_argv[0], os.getppid()))\n"
        "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
        "time.sleep(60)\n"
    )
    pid = _process.start_detached(sys.executable, ["kvmb-detached-test", "-c", script, str(marker)])
    try:
        shown, parent = until(lambda: marker.exists() and marker.read_text().split())
        assert shown == "kvmb-detached-test"  # argv[0] as given, not the program's path
        assert int(parent) != os.getpid()  # not our child: nothing of ours waits for it
        assert os.getsid(pid) not in (os.getsid(0), pid)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
    until(lambda: not _alive(pid))


def test_start_detached_refuses_what_is_no_program(tmp_path):
    with pytest.raises(ModuleError, match="is not an executable program"):
        _process.start_detached(str(tmp_path / "missing"), ["missing"])

# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes that outlive the module run, and a command with a time limit.

Two things the modules need that ``AnsibleModule.run_command`` alone does not give:

- ``spawn_detached(work)``: run ``work()`` in a grandchild that belongs to init,
  in a session of its own, with /dev/null for stdio and none of our descriptors.
  The guard's watcher runs this way; ``start_detached`` runs a program this way
  (a DHCP client that stays in the foreground).
- ``run_bounded(module, argv, timeout)``: ``module.run_command`` with a time
  limit, after which the command is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings
from typing import TYPE_CHECKING, Any, NoReturn

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class CommandTimeout(ModuleError):
    """The command ran longer than its time limit and was killed."""


def _close_inherited() -> None:
    """Close every descriptor above 2: those listed in /proc/self/fd, or a range where /proc cannot list them."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        os.closerange(3, 65536)
        return
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor is already closed
                os.close(fd)


def _detach(work: Callable[[], object], umask: int) -> NoReturn:
    """In a freshly forked child: leave everything of the parent behind, run ``work()``, and end."""
    try:
        os.chdir("/")
        os.umask(umask)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # Every other descriptor (an SSH channel's pipes, Mitogen's sockets, the spawn pipe) goes:
        # the connection that started the process may close, and nothing of it must wait for the process.
        _close_inherited()
        # Signals as a fresh process has them (Mitogen and Ansible may have blocked or caught some),
        # except the hang-up and interrupt of a terminal it never has.
        with contextlib.suppress(ValueError, OSError, AttributeError):
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for sig, action in (
            (signal.SIGHUP, signal.SIG_IGN),
            (signal.SIGINT, signal.SIG_IGN),
            (signal.SIGPIPE, signal.SIG_IGN),
            (signal.SIGTERM, signal.SIG_DFL),
            (signal.SIGCHLD, signal.SIG_DFL),
        ):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, action)
        work()
    finally:
        os._exit(0)


def spawn_detached(work: Callable[[], object], umask: int = 0o077) -> int:
    """Run ``work()`` in a grandchild in its own session, detached from this process; return the grandchild's PID.

    The classic double fork: the child makes a new session (no controlling
    terminal, no hang-up when the SSH session or the Mitogen context that
    started it goes), forks the grandchild and exits at once, so that the
    grandchild belongs to init and never becomes a zombie of this process. The
    grandchild has /dev/null as stdin, stdout and stderr and no other inherited
    descriptor. It runs only code already imported here: under Mitogen the
    module's imports come from the controller, which the grandchild cannot ask.
    """
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a process with threads (Mitogen's broker): the grandchild
        # runs only this thread's code and ends with os._exit() or an exec.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
        if child == 0:
            try:
                os.close(read_fd)
                os.setsid()
                grandchild = os.fork()
                if grandchild == 0:
                    _detach(work, umask)
                os.write(write_fd, str(grandchild).encode("ascii"))
            finally:
                os._exit(0)
    os.close(write_fd)
    try:
        os.waitpid(child, 0)
        data = os.read(read_fd, 32)
    finally:
        os.close(read_fd)
    if not data:
        raise ModuleError("Could not start a detached process: the fork that starts it failed on the host.")
    return int(data)


def start_detached(program: str, argv: Sequence[str], umask: int = 0o022) -> int:
    """Start ``program`` with the command line ``argv`` detached (see spawn_detached); return its PID.

    ``argv[0]`` stays as given, so that the process's command line is exactly ``argv``.
    """
    if not os.access(program, os.X_OK):
        raise ModuleError("Cannot start %s: %s is not an executable program." % (" ".join(argv), program))
    return spawn_detached(lambda: os.execv(program, list(argv)), umask=umask)  # noqa: S606 - a fixed program, no shell wanted


def run_bounded(module: Any, argv: Sequence[str], timeout: float, executable: str | None = None) -> tuple[int, str, str]:
    """``module.run_command(argv)`` killed after ``timeout`` seconds; return (rc, stdout, stderr).

    Raises CommandTimeout when the limit ended the command. ``executable`` is
    the program to run when ``argv[0]`` is only the name its command line shows.
    """
    state: dict[str, Any] = {}

    def watch(proc: Any) -> None:
        def expire() -> None:
            if proc.poll() is None:
                state["expired"] = True
                with contextlib.suppress(OSError):
                    proc.kill()

        state["timer"] = timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()

    try:
        rc, out, err = module.run_command(list(argv), executable=executable, expand_user_and_vars=False, before_communicate_callback=watch)
    finally:
        if "timer" in state:
            state["timer"].cancel()
    if state.get("expired"):
        raise CommandTimeout("%s did not finish within %ds and was stopped." % (" ".join(argv), timeout))
    return rc, out, err

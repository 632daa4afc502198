# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic, locked file writes shared by every module that persists state.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError


@contextlib.contextmanager
def directory_lock(directory, timeout=30.0):
    """Hold an exclusive flock on ``directory`` itself.

    Locking the directory (not a lock file beside the target) leaves no
    clutter in places such as network-scripts, and serialises every writer of
    this collection in that directory, so a read-modify-write under the lock
    loses no parallel update.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ModuleError(
            "Cannot open directory %s to lock it: %s. Create it first or fix its permissions." % (directory, exc.strerror)
        ) from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise ModuleError(
                        "Timed out after %.0fs waiting for the lock on %s; another task is writing there." % (timeout, directory)
                    ) from exc
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def read_bytes(path):
    """Return the file's content, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise ModuleError("%s is a directory, not a file." % path) from exc
    except OSError as exc:
        raise ModuleError("Cannot read %s: %s." % (path, exc.strerror)) from exc


def atomic_write(module, path, data, new_mode=0o644, backup=False, private=None):
    """Write ``data`` (bytes) to ``path`` atomically; return the backup path or None.

    The content goes to a temp file in the destination directory, is flushed to
    disk, and is moved into place with ``module.atomic_move``, which keeps the
    owner, mode and SELinux context of an existing file. A new file gets
    ``new_mode``. Nothing is left behind on failure.

    ``private``: a mode (like 0o600) that the file gets, new or existing,
    owned by root:root, whatever the umask; it never sits in place with a
    looser mode (NetworkManager ignores keyfiles others can read).
    """
    directory = os.path.dirname(path) or "."
    existed = os.path.exists(path)
    backup_file = None
    if backup and existed:
        backup_file = module.backup_local(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        if private is not None:
            os.fchmod(fd, private)
            os.fchown(fd, 0, 0)
            if existed:
                make_private(path, private)  # atomic_move copies the old file's mode and owner
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not existed and private is None:
            os.chmod(tmp, new_mode)
        if private is None:
            module.atomic_move(tmp, path, unsafe_writes=False)
        else:
            # atomic_move gives a new file 0666 & ~umask: make that the private mode.
            old_umask = os.umask(0o777 & ~private)
            try:
                module.atomic_move(tmp, path, unsafe_writes=False)
            finally:
                os.umask(old_umask)
            make_private(path, private)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return backup_file


def make_private(path, mode=0o600):
    """Give ``path`` ``mode`` and root:root ownership; return True when that changed anything."""
    st = os.lstat(path)
    changed = False
    if st.st_uid != 0 or st.st_gid != 0:
        os.lchown(path, 0, 0)
        changed = True
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
        changed = True
    return changed


def remove_file(module, path, backup=False):
    """Remove ``path``; return the backup path or None."""
    backup_file = module.backup_local(path) if backup else None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ModuleError("Cannot remove %s: %s." % (path, exc.strerror)) from exc
    return backup_file


def text_diff(path, before, after):
    """A diff entry for Ansible's diff mode; ``None`` content means no file."""
    return {
        "before_header": path if before is not None else "%s (absent)" % path,
        "after_header": path if after is not None else "%s (absent)" % path,
        "before": before or "",
        "after": after or "",
    }

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
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def directory_lock(directory: str, timeout: float = 30.0) -> Iterator[None]:
    """Hold an exclusive flock on ``directory`` itself.

    Locking the directory (not a lock file beside the target) leaves no
    clutter in places such as network-scripts, and serialises every writer of
    this collection in that directory, so a read-modify-write under the lock
    loses no parallel update.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ModuleError("Cannot open directory %s to lock it: %s. Create it first or fix its permissions." % (directory, exc.strerror)) from exc
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
                    raise ModuleError("Timed out after %.0fs waiting for the lock on %s; another task is writing there." % (timeout, directory)) from exc
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


# The most any reader of this collection takes from one file: ifcfg files,
# sysctl.d drop-ins, saved iptables rules and guard state are far smaller.
MAX_READ = 16 * 1024 * 1024


def read_bytes(path: str, max_size: int = MAX_READ) -> bytes | None:
    """Return the content of the regular file ``path``, or None when it does not exist.

    A symbolic link is followed (the file it names is read). Anything that is
    not a regular file (a FIFO, a device, a socket, a directory) is refused
    without blocking, and so is a file over ``max_size`` bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise ModuleError("%s is a directory, not a file." % path) from exc
    except OSError as exc:
        raise ModuleError("Cannot read %s: %s." % (path, exc.strerror)) from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ModuleError("%s is a directory, not a file." % path)
        if not stat.S_ISREG(info.st_mode):
            raise ModuleError("%s is %s, not a regular file; replace it with a regular file or remove it." % (path, _kind(info.st_mode)))
        if info.st_size > max_size:
            raise ModuleError("%s is %d bytes, more than the %d this collection reads from one file." % (path, info.st_size, max_size))
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > max_size:
                raise ModuleError("%s grew past %d bytes while it was read." % (path, max_size))
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ModuleError("Cannot read %s: %s." % (path, exc.strerror)) from exc
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def write_target(path: str) -> str:
    """The file a write to ``path`` changes: ``path``, or the end of its chain of symbolic links.

    The collection's symlink policy: a writer writes THROUGH a link to the
    regular file it names and leaves the link in place (RHEL's
    /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf stays a link, and
    /etc/sysctl.conf gets the change). A link that names nothing, a link
    loop, or a target that is not a regular file is refused.
    """
    if not os.path.islink(path):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return path  # missing (created) or unreadable (atomic_write reports it)
        if not stat.S_ISREG(mode):
            raise ModuleError("%s is %s, not a regular file; this task writes only regular files." % (path, _kind(mode)))
        return path
    target = os.path.realpath(path)
    try:
        info = os.stat(target)
    except OSError as exc:
        raise ModuleError(
            "%s is a symbolic link to %s, which cannot be written through (%s). Create that file, or replace the link "
            "with a regular file." % (path, os.readlink(path), exc.strerror)
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ModuleError("%s is a symbolic link to %s, which is %s, not a regular file." % (path, target, _kind(info.st_mode)))
    return target


def atomic_write(module: Any, path: str, data: bytes, new_mode: int = 0o644, backup: bool = False, private: int | None = None) -> str | None:
    """Write ``data`` (bytes) to ``path`` atomically; return the backup path or None.

    Every file write of the collection goes through here:

    - a symbolic link is written through (see write_target) and stays a link;
    - the content goes to a temp file in the target's directory (created 0600,
      whatever the umask), is flushed to disk, gets its final owner, mode and
      SELinux context while still private, and is renamed over the target;
    - an existing file keeps its owner, group and mode; a new file gets
      ``new_mode`` exactly (never ``0666 & ~umask``) and the running user;
    - any OSError becomes a ModuleError that says the file was not changed;
      nothing is left behind.

    ``module`` (an AnsibleModule, or None) is used for ``backup`` and SELinux.

    ``private``: a mode (like 0o600) that the file gets, new or existing,
    owned by root:root, whatever the umask; it never sits in place with a
    looser mode (NetworkManager ignores keyfiles others can read).
    """
    target = write_target(path)
    directory = os.path.dirname(target) or "."
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise ModuleError("Cannot write %s: %s. It was not changed." % (path, exc.strerror)) from exc
    backup_file = None
    if backup and existing is not None:
        backup_file = module.backup_local(target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(target), suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            _set_owner_and_mode(handle.fileno(), existing, new_mode, private)
        _copy_selinux_context(module, tmp, target, existing is not None)
        os.rename(tmp, target)
        tmp = None
    except OSError as exc:
        raise ModuleError("Cannot write %s: %s. It was not changed%s." % (path, exc.strerror or exc, "" if target == path else " (nor %s)" % target)) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    with contextlib.suppress(OSError):  # the rename is done; this only makes it durable sooner
        _sync_directory(directory)
    return backup_file


def _set_owner_and_mode(fd: int, existing: os.stat_result | None, new_mode: int, private: int | None) -> None:
    """Give the temp file ``fd`` the target's final owner and mode (see atomic_write's ``private`` and ``new_mode``)."""
    if private is not None:
        os.fchown(fd, 0, 0)
        os.fchmod(fd, private)
    elif existing is not None:
        with contextlib.suppress(PermissionError):  # not root: the file stays ours
            os.fchown(fd, existing.st_uid, existing.st_gid)
        os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    else:
        os.fchmod(fd, new_mode)


def _copy_selinux_context(module: Any, tmp: str, target: str, exists: bool) -> None:
    enabled = getattr(module, "selinux_enabled", None)
    if enabled is None or not enabled():
        return
    context = module.selinux_context(target) if exists else module.selinux_default_context(target)
    module.set_context_if_different(tmp, context, False)


def _sync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private(path: str, mode: int = 0o600) -> bool:
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


def remove_file(module: Any, path: str, backup: bool = False) -> str | None:
    """Remove ``path``; return the backup path or None.

    A symbolic link is removed itself (its target stays): the link is the
    name the reader looks up, so removing it is what removes the entry.
    """
    backup_file = module.backup_local(path) if backup else None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ModuleError(
            "Cannot remove %s: %s. Make it removable (a directory in its place, a read-only file system or missing permissions), then run the task again."
            % (path, exc.strerror)
        ) from exc
    return backup_file


def text_diff(path: str, before: str | None, after: str | None) -> dict[str, str]:
    """A diff entry for Ansible's diff mode; ``None`` content means no file."""
    return {
        "before_header": path if before is not None else "%s (absent)" % path,
        "after_header": path if after is not None else "%s (absent)" % path,
        "before": before or "",
        "after": after or "",
    }

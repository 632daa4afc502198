# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetworkManager keyfiles on disk: read the profile directory, write one profile, ask NetworkManager to load it.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

The I/O around the pure codec (_keyfile) and planner (_keyfile_plan), for the
nm_keyfile and nm_keyfile_info modules.
"""

from __future__ import annotations

import os
import pwd
import stat
import uuid as uuid_lib
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils import _keyfile, _keyfile_plan
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import (
    atomic_write,
    directory_lock,
    make_private,
    read_bytes,
    remove_file,
    text_diff,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._ifcfg_codec import display

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

MODE = 0o600
_MAX_SIZE = 1 << 20


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_directory(config_dir: str) -> None:
    """The profile directory must exist, be root's and not writable by group or others."""
    if "\0" in config_dir:
        raise ModuleError("config_dir must not contain a NUL byte.")
    try:
        st = os.stat(config_dir)
    except FileNotFoundError as exc:
        raise ModuleError(
            "config_dir %s does not exist. It comes with NetworkManager; install NetworkManager or create it (root:root, mode 0700 or 0755)." % config_dir
        ) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise ModuleError("config_dir %s is not a directory." % config_dir)
    problems = []
    if st.st_uid != 0:
        problems.append("it is owned by %s, not root" % _owner_name(st.st_uid))
    if stat.S_IMODE(st.st_mode) & 0o022:
        problems.append("group or others can write to it (mode %04o)" % stat.S_IMODE(st.st_mode))
    if problems:
        raise ModuleError(
            "config_dir %s is not safe for NetworkManager profiles: %s. Anyone who can write there can change the "
            "host's network. Fix it with: chown root:root %s; chmod go-w %s." % (config_dir, "; ".join(problems), config_dir, config_dir)
        )


def file_problem(st: os.stat_result) -> str | None:
    """Why NetworkManager ignores a profile file with this stat, or None."""
    problems: list[str] = []
    if st.st_uid != 0:
        problems.append("owned by %s, not root" % _owner_name(st.st_uid))
    if stat.S_IMODE(st.st_mode) & 0o077:
        problems.append("mode %04o lets group or others read or write it" % stat.S_IMODE(st.st_mode))
    if not problems:
        return None
    return "NetworkManager ignores this file: %s. Fix it with chown root:root and chmod 0600." % "; ".join(problems)


def read_directory(config_dir: str) -> dict[str, tuple[str, os.stat_result]]:
    """{file name: (text, stat)} of the regular files in the profile directory (empty when it is missing)."""
    try:
        names = os.listdir(config_dir)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ModuleError("Cannot list %s: %s." % (config_dir, exc.strerror)) from exc
    found: dict[str, tuple[str, os.stat_result]] = {}
    for name in sorted(names):
        path = os.path.join(config_dir, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_SIZE:
            continue
        data: bytes | None = read_bytes(path)
        if data is not None:
            found[name] = (data.decode("utf-8", "surrogateescape"), st)
    return found


def nic_mac(interface: str | None) -> str | None:
    """The interface's current MAC from sysfs, or None."""
    data: bytes | None = read_bytes("/sys/class/net/%s/address" % interface) if interface else None
    return data.decode("ascii", "replace").strip().upper() if data else None


def nm_running(module: Any) -> str | None:
    """Whether NetworkManager runs (nmcli answers), without starting it."""
    nmcli: str | None = module.get_bin_path("nmcli")
    if not nmcli:
        return None
    rc, out, _err = module.run_command([nmcli, "-t", "-f", "RUNNING", "general"])
    return nmcli if rc == 0 and out.strip() == "running" else None


def reload_profile(module: Any, path: str) -> bool:
    """``nmcli connection load PATH`` (or ``reload`` when the file is gone); False when NetworkManager does not run."""
    nmcli = nm_running(module)
    if not nmcli:
        return False
    argv = [nmcli, "connection", "load", path] if os.path.exists(path) else [nmcli, "connection", "reload"]
    rc, out, err = module.run_command(argv)
    if rc != 0:
        raise ModuleError(
            "The profile file %s is written, but NetworkManager refused to load it (%s): %s. Read the NetworkManager log "
            "(journalctl -u NetworkManager) and fix the file." % (path, " ".join(argv), (err or out).strip())
        )
    return True


def _changes_out(changes: Iterable[_keyfile_plan.Change]) -> list[dict[str, str | None]]:
    return [dict(change.as_dict(), before=display(change.before), after=display(change.after)) for change in changes]


def run_module(module: Any) -> dict[str, Any]:
    """nm_keyfile: plan and write one profile."""
    params = module.params
    config_dir = params["config_dir"].rstrip("/") or "/"
    if params["state"] == "absent":
        return _remove(module, config_dir)
    request = _keyfile_plan.build_request(params)
    check_directory(config_dir)
    backup_file = None
    reloaded = False
    with directory_lock(config_dir):
        entries = read_directory(config_dir)
        files = {name: text for name, (text, _st) in entries.items()}
        plan = _keyfile_plan.plan(files, request, str(uuid_lib.uuid4()), nic_mac(request.interface))
        path = os.path.join(config_dir, plan.file_name)
        changes = list(plan.changes)
        st = entries[plan.file_name][1] if plan.file_name in entries else None
        fix: list[_keyfile_plan.Change] = []
        if st is not None:
            if st.st_uid != 0 or st.st_gid != 0:
                fix.append(_keyfile_plan.Change("file", "owner", "set", "%d:%d" % (st.st_uid, st.st_gid), "0:0"))
            if stat.S_IMODE(st.st_mode) != MODE:
                fix.append(_keyfile_plan.Change("file", "mode", "set", "%04o" % stat.S_IMODE(st.st_mode), "%04o" % MODE))
        changes += fix
        changed = plan.changed or bool(fix)
        if changed and not module.check_mode:
            if plan.changed:
                data = plan.after.encode("utf-8", "surrogateescape")
                backup_file = atomic_write(module, path, data, MODE, params["backup"], private=MODE)
            else:
                make_private(path, MODE)
    if changed and params["reload"] and not module.check_mode:
        reloaded = reload_profile(module, path)
    result: dict[str, Any] = {
        "changed": changed,
        "path": path,
        "id": plan.profile["id"],
        "uuid": plan.profile["uuid"],
        "adopted": plan.adopted,
        "other_profiles": [os.path.join(config_dir, name) for name in plan.others],
        "changed_keys": [change.label for change in changes],
        "changes": _changes_out(changes),
        "profile": public_profile(plan.profile),
        "reloaded": reloaded,
        "diff": text_diff(path, display(plan.before), display(plan.after)),
        "warnings": [],
    }
    if plan.others:
        result["warnings"].append(
            "Other profiles also apply to %s: %s. NetworkManager may activate one of them instead; remove them or set "
            "autoconnect=false there." % (request.interface, ", ".join(result["other_profiles"]))
        )
    if backup_file:
        result["backup_file"] = backup_file
    # keep the changed_keys unique and in order
    result["changed_keys"] = list(dict.fromkeys(result["changed_keys"]))
    return result


def _remove(module: Any, config_dir: str) -> dict[str, Any]:
    params = module.params
    _keyfile_plan.validate_name(params["name"])
    if not os.path.isdir(config_dir):
        return {
            "changed": False,
            "path": None,
            "id": params["name"],
            "uuid": None,
            "adopted": False,
            "other_profiles": [],
            "changed_keys": [],
            "changes": [],
            "reloaded": False,
        }
    check_directory(config_dir)
    backup_file = None
    reloaded = False
    with directory_lock(config_dir):
        files = {name: text for name, (text, _st) in read_directory(config_dir).items()}
        file_name, before = _keyfile_plan.plan_remove(files, params["name"])
        path = os.path.join(config_dir, file_name or _keyfile.file_name_for(params["name"]))
        changed = file_name is not None
        if changed and not module.check_mode:
            backup_file = remove_file(module, path, params["backup"])
    if changed and params["reload"] and not module.check_mode:
        reloaded = reload_profile(module, path)
    changes: list[_keyfile_plan.Change] = []
    if before is not None:
        keyfile = _keyfile.KeyFile.parse(before)
        for group in keyfile.groups():
            for key, raw in keyfile.raw_items(group).items():
                changes.append(_keyfile_plan.Change(_keyfile.short_group(_keyfile.setting_name(group)), key, "remove", before=raw))
    result = {
        "changed": changed,
        "path": path,
        "id": params["name"],
        # plan_remove gives both the file name and its text, or neither.
        "uuid": _keyfile.read_profile(before, file_name)["uuid"] if before is not None and file_name is not None else None,
        "adopted": False,
        "other_profiles": [],
        "changed_keys": list(dict.fromkeys(change.label for change in changes)),
        "changes": _changes_out(changes),
        "reloaded": reloaded,
        "diff": text_diff(path, display(before), None),
    }
    if backup_file:
        result["backup_file"] = backup_file
    return result


def public_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A profile for task results: text that is not UTF-8 shown with U+FFFD."""

    def clean(value: object) -> Any:
        if isinstance(value, str):
            return display(value)
        if isinstance(value, dict):
            return {clean(key): clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return {clean(key): clean(item) for key, item in profile.items()}


def read_info(config_dir: str, interfaces: Sequence[str] | None = None, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """nm_keyfile_info: every profile in the directory (or those of the given interfaces/ids), with problems.

    Returns {profiles: [...], interfaces: {name: [ids]}, ports: {bridge: [ids]}}.
    """
    for interface in interfaces or []:
        _keyfile_plan.validate_device(interface, "interfaces")
    if "\0" in config_dir:
        raise ModuleError("config_dir must not contain a NUL byte.")
    entries = read_directory(config_dir)
    profiles: list[dict[str, Any]] = []
    for name, (text, st) in entries.items():
        reason = _keyfile.ignored_name(name)
        if reason:
            continue
        profile = _keyfile.read_profile(text, name)
        problem = file_problem(st)
        if problem:
            profile["problems"].insert(0, problem)
        profile["path"] = os.path.join(config_dir, name)
        profile["loaded"] = profile.pop("loads") and problem is None
        del profile["errors"]  # already in problems
        profiles.append(public_profile(profile))

    def wanted(profile: Mapping[str, Any]) -> bool:
        if interfaces is None and ids is None:
            return True
        # "x in ()" is False, so an empty list selects nothing as before.
        by_interface = interfaces is not None and (profile["interface_name"] in interfaces or profile["controller"] in interfaces)
        return by_interface or (ids is not None and profile["id"] in ids)

    selected = [profile for profile in profiles if wanted(profile)]
    owners: dict[str, list[str]] = {}
    ports: dict[str, list[str]] = {}
    for profile in profiles:
        if not profile["loaded"]:
            continue
        if profile["interface_name"]:
            owners.setdefault(profile["interface_name"], []).append(profile["id"])
        if profile["controller"]:
            ports.setdefault(profile["controller"], []).append(profile["id"])
    if interfaces is not None:
        owners = {name: owners.get(name, []) for name in interfaces}
    return {"profiles": selected, "interfaces": owners, "ports": ports}

# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration off ifcfg: network-scripts profiles -> NetworkManager keyfiles, the ifcfg files kept as backups.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

Layers:

- ``plan(...)`` (pure): which ifcfg files become which keyfiles, or one
  ModuleError naming every file that cannot be converted (nothing is written
  then). It reads nothing itself: the caller passes what is on disk.
- ``run_module(module)``: reads network-scripts and the keyfile directory once,
  plans, writes the keyfiles (root 0600, atomically, under the directory's
  lock), then moves the ifcfg files into a stamped backup directory outside
  network-scripts with a manifest, and optionally asks NetworkManager to load
  the keyfiles. ``state=restored`` undoes a migration from its manifest.
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils import _ifcfg_codec, _keyfile, _keyfile_ifcfg
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import (
    atomic_write,
    directory_lock,
    read_bytes,
    remove_file,
    text_diff,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._keyfile_io import check_directory, nic_mac, nm_running, read_directory
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import ifname_problem
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm_doctor import ifcfg_profiles

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    Item = dict[str, Any]  # one file's migration: see plan()
    Raw = dict[str, tuple[bytes, int]]  # {ifcfg file name: (its content, its mode)}

MODE = 0o600
MANIFEST = "manifest.json"
# Per-device files of network-scripts that the conversion does not carry over: their device is refused.
_COMPANIONS = ("route-", "route6-", "rule-", "rule6-")
_ORDER = {"bridge": 0, "port": 1, "ethernet": 2}


# -- plan (pure) -------------------------------------------------------------------
def _role(converted: Mapping[str, Any]) -> str:
    if converted["type"] == "bridge":
        return "bridge"
    return "port" if converted["groups"]["connection"].get("master") else "ethernet"


def _keep_bridge_mac(converted_all: Sequence[dict[str, Any]], macs: Mapping[str, str]) -> None:
    """A bridge with no MACADDR keeps the MAC of its one NIC, as it had under network-scripts (the kernel gives a bridge
    its port's MAC; NetworkManager would give it another one when it creates the bridge, and DHCP a new lease)."""
    for bridge in converted_all:
        if bridge["type"] != "bridge" or "cloned-mac-address" in bridge["groups"].get("ethernet", {}):
            continue
        ports = [c for c in converted_all if c["groups"]["connection"].get("master") == bridge["interface"]]
        found = {c["groups"].get("ethernet", {}).get("mac-address") or macs.get(c["interface"]) for c in ports}
        found.discard(None)
        if len(ports) == 1 and len(found) == 1:
            bridge["groups"].setdefault("ethernet", {})["cloned-mac-address"] = found.pop()
            bridge["text"] = _keyfile.dumps(bridge["groups"])


def plan(
    config_dir: str,
    ifcfg: Mapping[str, Mapping[str, str | None]],
    keyfiles: Mapping[str, str],
    keyfile_dir: str,
    names: Collection[str] = (),
    macs: Mapping[str, str] | None = None,
) -> list[Item]:
    """What the migration does.

    ``ifcfg``: {file name: variables} of the ifcfg profiles in ``config_dir``
    (as ``_ifcfg_codec.parse`` and ``display`` give them); ``keyfiles``: {file name:
    text} of the files in ``keyfile_dir``; ``names``: every file name in
    ``config_dir`` (for route-/rule- files). Returns the items in the order
    they are written (bridges, ports, plain NICs), each {ifcfg, keyfile,
    file_name, id, uuid, type, role, interface, controller, autoconnect, text,
    write, warnings}. ``macs``: {device: MAC} of the devices present, for
    a bridge's one port without HWADDR. Raises one ModuleError listing every
    problem.
    """
    problems: list[str] = []
    converted_all: list[dict[str, Any]] = []
    for name in sorted(ifcfg):
        outcome = _convert(os.path.join(config_dir, name), ifcfg[name], names)
        if outcome[0] is None:
            problems.append(outcome[1])
            continue
        converted_all.append(outcome[0])
    _keep_bridge_mac(converted_all, macs or {})
    items = [_item(converted, keyfile_dir) for converted in converted_all]
    problems += _conflicts(items, keyfiles, keyfile_dir)
    if problems:
        raise ModuleError(
            "The migration off ifcfg cannot convert every profile, so it changed nothing: %s" % " ".join(problems),
            problems=problems,
        )
    items.sort(key=lambda item: (_ORDER[item["role"]], item["interface"]))
    return items


def _convert(path: str, variables: Mapping[str, str | None], names: Collection[str]) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """(the converted profile of the ifcfg file ``path``, None) or (None, why it cannot be migrated)."""
    try:
        converted = _keyfile_ifcfg.convert(variables, path)
    except ModuleError as exc:
        return None, exc.msg
    if converted["unconverted"]:
        return None, "%s has settings the migration cannot carry over (%s); convert it by hand or remove them first." % (
            path,
            ", ".join(converted["unconverted"]),
        )
    device = converted["interface"]
    extra = sorted(prefix + device for prefix in _COMPANIONS if prefix + device in names)
    if extra:
        return None, (
            "%s has %s next to it (static routes or rules), which the migration does not convert; move them into the "
            "keyfile by hand (nmcli connection modify ... ipv4.routes) and remove them first." % (path, ", ".join(extra))
        )
    converted["ifcfg"] = path
    return converted, None


def _item(converted: Mapping[str, Any], keyfile_dir: str) -> Item:
    """One item of plan()'s list for a converted profile."""
    connection = converted["groups"]["connection"]
    return {
        "ifcfg": converted["ifcfg"],
        "keyfile": os.path.join(keyfile_dir, converted["file_name"]),
        "file_name": converted["file_name"],
        "id": converted["id"],
        "uuid": converted["uuid"],
        "type": converted["type"],
        "role": _role(converted),
        "interface": converted["interface"],
        "controller": connection.get("master"),
        "autoconnect": connection.get("autoconnect") != "false",
        "text": converted["text"],
        "write": True,
        "warnings": list(converted["warnings"]),
    }


def _conflicts(items: Sequence[Item], keyfiles: Mapping[str, str], keyfile_dir: str) -> list[str]:
    problems: list[str] = []
    seen: dict[tuple[str, Any], Item] = {}
    for item in items:
        for what in ("file_name", "uuid", "interface"):
            other = seen.get((what, item[what]))
            if other is not None:
                problems.append(
                    "%s and %s give the same %s %s; NetworkManager keeps only one. Merge or remove one of them first."
                    % (other["ifcfg"], item["ifcfg"], what.replace("_", " "), item[what])
                )
            seen[(what, item[what])] = item
    existing: dict[str, dict[str, Any]] = {}
    for name, text in sorted(keyfiles.items()):
        if _keyfile.ignored_name(name):
            continue
        try:
            existing[name] = _keyfile.read_profile(text, name)
        except ModuleError:
            continue
    bridges = {item["interface"] for item in items if item["type"] == "bridge"}
    for profile in existing.values():
        if profile.get("type") == "bridge":
            bridges.update(x for x in (profile.get("interface_name"), profile.get("id")) if x)
    for item in items:
        path = os.path.join(keyfile_dir, item["file_name"])
        if item["file_name"] in keyfiles:
            if keyfiles[item["file_name"]] == item["text"]:
                item["write"] = False  # an earlier run wrote it and stopped before the ifcfg file moved
            else:
                problems.append("%s would become %s, which exists with other content. Move one of them away first." % (item["ifcfg"], path))
                continue
        for name, profile in existing.items():
            if name == item["file_name"]:
                continue
            if profile.get("uuid") == item["uuid"]:
                problems.append(
                    "%s has the uuid %s of %s already; remove the older profile first." % (os.path.join(keyfile_dir, name), item["uuid"], item["ifcfg"])
                )
            elif profile.get("interface_name") == item["interface"] and profile.get("type") == item["type"]:
                problems.append(
                    "%s already configures %s, which %s configures too: NetworkManager would hold two profiles for "
                    "one device. Remove one of them first." % (os.path.join(keyfile_dir, name), item["interface"], item["ifcfg"])
                )
        if item["controller"] and item["controller"] not in bridges:
            problems.append(
                "%s is a port of %s, but no bridge profile for %s exists or is migrated: at boot the NIC would wait "
                "for a bridge that never comes. Add ifcfg-%s (TYPE=Bridge) or remove BRIDGE= first."
                % (item["ifcfg"], item["controller"], item["controller"], item["controller"])
            )
    return problems


def activations(items: Sequence[Item]) -> list[dict[str, Any]]:
    """The profiles to bring up after loading, as uuids, bridges first, then ports and plain NICs.

    A bridge comes first even when a port follows: a port alone would join a bridge that runs outside NetworkManager
    (the network service made it) and leave that bridge unmanaged. Profiles with ONBOOT=no stay down.
    """
    return [{"uuid": item["uuid"], "id": item["id"], "interface": item["interface"]} for item in items if item["autoconnect"]]


def describe(items: Sequence[Item]) -> str:
    """One line for the play: what becomes what."""
    if not items:
        return "no ifcfg profile is left to migrate"
    return "migrating %s" % ", ".join("%s (%s) -> %s" % (os.path.basename(i["ifcfg"]), i["role"], i["file_name"]) for i in items)


def stamp_dir(backup_dir: str, taken: Collection[str], now: float | None = None) -> str:
    """A new directory name under ``backup_dir`` for this run: the UTC time, with -N when it is taken."""
    base = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    name, n = base, 1
    while name in taken:
        n += 1
        name = "%s-%d" % (base, n)
    return os.path.join(backup_dir, name)


def check_backup_dir(backup_dir: str, config_dir: str) -> None:
    """The backups must live outside network-scripts (leapp and NetworkManager look at every ifcfg-* there)."""
    if not os.path.isabs(backup_dir):
        raise ModuleError("backup_dir %s must be an absolute path." % backup_dir)
    inside = os.path.normpath(backup_dir) + "/"
    if inside.startswith(os.path.normpath(config_dir).rstrip("/") + "/"):
        raise ModuleError(
            "backup_dir %s is inside %s, where leapp and NetworkManager would still find the ifcfg files. Choose a directory "
            "outside it, such as /var/lib/kvmhost-bridging/ifcfg-backup." % (backup_dir, config_dir)
        )


# -- read and apply ---------------------------------------------------------------------
def _read_ifcfg(config_dir: str) -> tuple[dict[str, dict[str, str | None]], Raw, list[str]]:
    try:
        names = sorted(os.listdir(config_dir))
    except FileNotFoundError:
        return {}, {}, []
    except OSError as exc:
        raise ModuleError("Cannot list %s: %s." % (config_dir, exc.strerror)) from exc
    variables: dict[str, dict[str, str | None]] = {}
    raw: Raw = {}
    for name in ifcfg_profiles(config_dir, lambda _d: names):
        path = os.path.join(config_dir, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise ModuleError("%s is not a regular file; the migration moves only regular ifcfg files. Resolve it by hand first." % path)
        data = read_bytes(path)
        if data is None:
            continue  # removed since the lstat, like a file that was missing then
        raw[name] = (data, stat.S_IMODE(st.st_mode))
        variables[name] = {key: _ifcfg_codec.display(value) for key, value in _ifcfg_codec.parse(data).items()}
    return variables, raw, names


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ModuleError("Cannot create the backup directory %s: %s. Nothing was changed." % (path, exc.strerror)) from exc


def run_module(module: Any) -> dict[str, Any]:
    params = module.params
    if params["state"] == "restored":
        return restore(module)
    config_dir = params["config_dir"].rstrip("/") or "/"
    keyfile_dir = params["keyfile_dir"].rstrip("/") or "/"
    backup_dir = params["backup_dir"].rstrip("/") or "/"
    check_backup_dir(backup_dir, config_dir)
    if params["stamp"] is not None and (params["stamp"] in ("", ".", "..") or "/" in params["stamp"] or "\0" in params["stamp"]):
        raise ModuleError("stamp %r must be a plain directory name (no /)." % params["stamp"])
    ifcfg, raw, names = _read_ifcfg(config_dir)
    result: dict[str, Any] = {"changed": False, "migrated": [], "activate": [], "backup_dir": None, "reloaded": False, "warnings": [], "diff": []}
    if not ifcfg:
        result["msg"] = describe([])
        return result
    check_directory(keyfile_dir)
    with directory_lock(keyfile_dir):
        keyfiles = {name: text for name, (text, _st) in read_directory(keyfile_dir).items()}
        macs: dict[str, str | None] = {}
        for variables in ifcfg.values():
            device = variables.get("DEVICE")
            if device and ifname_problem(device, "DEVICE") is None:
                macs[device] = nic_mac(device)
        items = plan(config_dir, ifcfg, keyfiles, keyfile_dir, names, {k: v for k, v in macs.items() if v})
        try:
            taken = os.listdir(backup_dir)
        except OSError:
            taken = []
        target = os.path.join(backup_dir, params["stamp"]) if params["stamp"] else stamp_dir(backup_dir, taken)
        for item in items:
            name = os.path.basename(item["ifcfg"])
            item["backup"] = os.path.join(target, name)
            result["warnings"] += item.pop("warnings")
            result["diff"].append(text_diff(item["keyfile"], keyfiles.get(item["file_name"]), item["text"]))
            result["diff"].append(text_diff(item["ifcfg"], _ifcfg_codec.display(raw[name][0].decode("utf-8", "surrogateescape")), None))
        result.update(
            changed=True,
            backup_dir=target,
            msg=describe(items),
            activate=activations(items),
            migrated=[{k: v for k, v in item.items() if k != "text"} for item in items],
        )
        if module.check_mode:
            return result
        _apply(module, items, raw, target)
    if params["reload"]:
        for item in items:
            if nm_running(module) is None:
                break
            rc, out, err = module.run_command([module.get_bin_path("nmcli", required=True), "connection", "load", item["keyfile"]])
            if rc != 0:
                raise ModuleError(
                    "The keyfiles are written and the ifcfg files are in %s, but NetworkManager refused to load %s: %s. Undo it "
                    "with state=restored backup_dir=%s." % (target, item["keyfile"], (err or out).strip(), target),
                    changed=True,
                    backup_dir=target,
                )
            result["reloaded"] = True
    return result


def _apply(module: Any, items: Sequence[Item], raw: Raw, target: str) -> None:
    """Keyfiles first, then the manifest, then move the ifcfg files; a failure before the moves undoes the new keyfiles."""
    written: list[str] = []
    try:
        for item in items:
            if item["write"]:
                atomic_write(module, item["keyfile"], item["text"].encode("utf-8", "surrogateescape"), MODE, private=MODE)
                written.append(item["keyfile"])
        _makedirs(target)
        manifest = [
            {"ifcfg": i["ifcfg"], "backup": i["backup"], "mode": raw[os.path.basename(i["ifcfg"])][1], "keyfile": i["keyfile"], "text": i["text"]}
            for i in items
        ]
        atomic_write(module, os.path.join(target, MANIFEST), json.dumps({"files": manifest}, indent=1).encode(), MODE)
    except ModuleError as exc:
        for path in written:
            remove_file(module, path)
        raise ModuleError(exc.msg + " The keyfiles written so far were removed again; nothing was changed.") from exc
    moved: list[str] = []
    for item in items:
        data, mode = raw[os.path.basename(item["ifcfg"])]
        try:
            atomic_write(module, item["backup"], data, mode)
            remove_file(module, item["ifcfg"])
        except ModuleError as exc:
            raise ModuleError(
                "%s Already changed: the keyfiles are written and %s moved to %s. Undo it with state=restored backup_dir=%s."
                % (exc.msg, ", ".join(moved) or "no ifcfg file was", target, target),
                changed=True,
                backup_dir=target,
            ) from exc
        moved.append(os.path.basename(item["ifcfg"]))


def restore(module: Any) -> dict[str, Any]:
    """Undo a migration from its backup directory: the ifcfg files go back, the keyfiles it wrote go away."""
    target = module.params["backup_dir"].rstrip("/")
    data = read_bytes(os.path.join(target, MANIFEST))
    failure = module.params.get("failure")
    if data is None and failure:
        raise ModuleError(failure_message(failure, module.params.get("rolled_back"), [], []), changed=True)
    if data is None:
        raise ModuleError(
            "%s has no %s: it is not a backup directory of this migration. Give the stamped directory the "
            "migration returned as backup_dir." % (target, MANIFEST)
        )
    try:
        entries = json.loads(data.decode("utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModuleError(
            "%s is not a manifest this migration wrote (%s); restore the files from %s by hand." % (os.path.join(target, MANIFEST), exc, target)
        ) from exc
    restored: list[str] = []
    removed: list[str] = []
    backups: dict[str, bytes] = {}  # {ifcfg path: its backup's content}, for those restored
    for entry in entries:
        backup = read_bytes(entry["backup"])
        if backup is not None and not os.path.lexists(entry["ifcfg"]):
            restored.append(entry["ifcfg"])
            backups[entry["ifcfg"]] = backup
        keyfile = read_bytes(entry["keyfile"])
        if keyfile is not None and keyfile.decode("utf-8", "surrogateescape") == entry["text"]:
            removed.append(entry["keyfile"])
    result = {
        "changed": bool(restored or removed),
        "restored": restored,
        "removed": removed,
        "backup_dir": target,
        "msg": "restored %s; removed %s" % (", ".join(restored) or "nothing", ", ".join(removed) or "nothing"),
    }
    if module.check_mode or not (result["changed"] or failure):
        return result
    for entry in entries:
        if entry["ifcfg"] in restored:
            atomic_write(module, entry["ifcfg"], backups[entry["ifcfg"]], int(entry.get("mode", 0o644)))
        if entry["keyfile"] in removed:
            remove_file(module, entry["keyfile"])
    nmcli = nm_running(module) if result["changed"] else None
    if nmcli:
        module.run_command([nmcli, "connection", "reload"])
    if failure:
        raise ModuleError(
            failure_message(failure, module.params.get("rolled_back"), restored, removed), changed=True, restored=restored, removed=removed, backup_dir=target
        )
    return result


def failure_message(failure: str, rolled_back: str | None, restored: Sequence[str], removed: Sequence[str]) -> str:
    """The role's failure after a rollback: what failed, what NetworkManager restored, what the migration undid.

    ``failure``: ``unreachable`` (no fresh connection after the activation), ``activation: <nmcli's errors>``, or
    the failed step and its message.
    """
    if failure == "unreachable":
        what = "the host did not answer over a fresh connection after the activation, so nothing confirmed the NetworkManager checkpoint"
    elif failure.startswith("activation: "):
        what = "NetworkManager could not activate every profile (%s)" % failure[len("activation: ") :].strip()
    else:
        what = failure
    parts = ["The migration off ifcfg failed: %s." % what.rstrip(".")]
    parts.append("%s." % (rolled_back or "NetworkManager rolled the checkpoint back by itself when its timeout ran out").rstrip("."))
    if restored:
        parts.append("The ifcfg files are back: %s." % ", ".join(restored))
    else:
        parts.append("No ifcfg file had moved yet.")
    if removed:
        parts.append("The keyfiles the migration wrote are removed: %s." % ", ".join(removed))
    parts.append("The host runs as before; fix the cause and run the migration again.")
    return " ".join(parts)

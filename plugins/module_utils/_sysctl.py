# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Forwarding sysctls: runtime values in /proc/sys, a persistent sysctl.d drop-in,
and the boot-time precedence of systemd-sysctl.

At boot systemd-sysctl reads ``*.conf`` from /etc/sysctl.d, /run/sysctl.d,
/usr/local/lib/sysctl.d, /usr/lib/sysctl.d and /lib/sysctl.d. A file in an
earlier directory masks a file of the same name in a later one; the remaining
files are applied sorted by file name whatever their directory, and
/etc/sysctl.conf comes last. A later assignment wins; an explicit key wins
over any glob. This module computes that order to tell whether another file
would override a value at boot.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import (
    atomic_write,
    directory_lock,
    read_bytes,
    text_diff,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    # sysctl.d path -> its assignments, in order
    Parsed = dict[str, list["Assignment"]]

KEY_IPV4 = "net.ipv4.ip_forward"
KEY_IPV6 = "net.ipv6.conf.all.forwarding"
BRIDGE_KEYS = (
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
)

SEARCH_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
ETC_DIR = "/etc/sysctl.d"
SYSCTL_CONF = "/etc/sysctl.conf"
PROC_SYS = "/proc/sys"

HEADER = "# Managed by kvmhost.bridging.ip_forward: forwarding sysctls, applied at boot by systemd-sysctl.\n"
DISABLED_PREFIX = "# disabled by kvmhost.bridging.ip_forward: "


# --------------------------------------------------------------------------
# Keys and values
# --------------------------------------------------------------------------


def key_path(name: str) -> str:
    """The /proc/sys relative path of a sysctl name written with dots or slashes.

    As systemd-sysctl reads it: when the first separator is a dot, dots and
    slashes swap (``net.ipv4.conf.eth0/10.rp_filter`` is
    ``net/ipv4/conf/eth0.10/rp_filter``); when it is a slash the name is a path.
    """
    name = name.strip()
    for char in name:
        if char == "/":
            return name
        if char == ".":
            return name.translate(str.maketrans("./", "/."))
    return name


def key_name(path: str) -> str:
    """The dotted name of a key path (the inverse of key_path)."""
    return path.translate(str.maketrans("/.", "./"))


def same_value(left: str | None, right: str | None) -> bool:
    """Compare sysctl values as the kernel would read them ("1" == " 1" == "01")."""
    if left is None or right is None:
        return left is right
    left, right = " ".join(str(left).split()), " ".join(str(right).split())
    try:
        return int(left) == int(right)
    except ValueError:
        return left == right


def desired_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Dotted key -> "0"/"1" for every option that was given, in a stable order."""
    desired: dict[str, str] = {}
    if params.get("ipv4") is not None:
        desired[KEY_IPV4] = "1" if params["ipv4"] else "0"
    if params.get("ipv6") is not None:
        desired[KEY_IPV6] = "1" if params["ipv6"] else "0"
    if params.get("bridge_nf_call") is not None:
        for key in BRIDGE_KEYS:
            desired[key] = "1" if params["bridge_nf_call"] else "0"
    return desired


# --------------------------------------------------------------------------
# sysctl.d files
# --------------------------------------------------------------------------


@dataclass(repr=False)
class Assignment:
    """One ``key = value`` (or ``-key`` exclusion) line of a sysctl.d file."""

    path: str
    index: int  # 0-based line number
    key: str  # path form (net/ipv4/ip_forward)
    value: str | None  # None: "-key" without value, excludes the key from globs
    glob: bool = False

    def __repr__(self) -> str:
        return "Assignment(%r, %d, %r, %r)" % (self.path, self.index, self.key, self.value)

    def matches(self, key: str) -> bool:
        if self.glob:
            return fnmatch.fnmatchcase(key, self.key)
        return self.key == key

    def describe(self) -> str:
        return "%s line %d (%s = %s)" % (self.path, self.index + 1, key_name(self.key), self.value)


def parse_conf(path: str, text: str | None) -> list[Assignment]:
    """The assignments of a sysctl.d file, in order."""
    assignments: list[Assignment] = []
    for index, raw in enumerate((text or "").split("\n")):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if "=" not in line:
            if line.startswith("-") and line[1:].strip():
                key = key_path(line[1:])
                assignments.append(Assignment(path, index, key, None, glob=_is_glob(key)))
            continue  # systemd-sysctl ignores other lines (with a warning)
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("-"):  # "-key = value": ignore failures when writing
            key = key[1:].strip()
        if not key:
            continue
        key = key_path(key)
        assignments.append(Assignment(path, index, key, value.strip(), glob=_is_glob(key)))
    return assignments


def _is_glob(key: str) -> bool:
    return any(char in key for char in "*?[")


def config_order(
    listing: Mapping[str, Iterable[str]], search_dirs: Iterable[str] = SEARCH_DIRS, sysctl_conf: str = SYSCTL_CONF, sysctl_conf_exists: bool = True
) -> list[str]:
    """The files systemd-sysctl applies, in order.

    ``listing`` maps each search directory to the file names in it.
    """
    chosen: dict[str, str] = {}
    for directory in search_dirs:
        for name in sorted(listing.get(directory, ())):
            if name.endswith(".conf") and not name.startswith(".") and name not in chosen:
                chosen[name] = os.path.join(directory, name)
    order = [chosen[name] for name in sorted(chosen)]
    if sysctl_conf_exists:
        order.append(sysctl_conf)
    return order


def boot_value(order: Iterable[str], parsed: Mapping[str, Sequence[Assignment]], key: str) -> tuple[str | None, Assignment | None]:
    """The (value, Assignment) a key gets at boot, or (None, None) when no file sets it.

    A later explicit assignment wins; globs apply only to keys that no file
    sets explicitly and that no ``-key`` line excludes.
    """
    explicit = None
    from_glob = None
    excluded = False
    for path in order:
        for item in parsed.get(path, ()):
            if not item.matches(key):
                continue
            if item.value is None:
                excluded = excluded or not item.glob or item.key == key
            elif item.glob:
                from_glob = item
            else:
                explicit = item
    winner = explicit or (None if excluded else from_glob)
    return (winner.value, winner) if winner else (None, None)


def render_drop_in(existing: str | None, desired: Mapping[str, str]) -> str:
    """Our drop-in's text with ``desired`` (dotted key -> value) set.

    Lines of the keys already there get the new value in place; missing keys
    are appended; every other line (comments, other keys) stays as it is.
    """
    if existing is None or not existing.strip():
        return HEADER + "".join("%s = %s\n" % (key, value) for key, value in desired.items())
    wanted = {key_path(key): value for key, value in desired.items()}
    seen: set[str] = set()
    lines = existing.split("\n")
    for index, raw in enumerate(lines):
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;" or "=" not in stripped:
            continue
        name, value = raw.split("=", 1)
        key = key_path(name.strip().lstrip("-"))
        if key not in wanted:
            continue
        seen.add(key)
        if not same_value(value, wanted[key]):
            lead = value[: len(value) - len(value.lstrip())]
            trail = value[len(value.rstrip()) :]
            lines[index] = "%s=%s%s%s" % (name, lead or " ", wanted[key], trail)
    text = "\n".join(lines)
    missing = [(key, value) for key, value in desired.items() if key_path(key) not in seen]
    if missing:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join("%s = %s\n" % (key, value) for key, value in missing)
    return text


def comment_out(text: str, indexes: Iterable[int]) -> str:
    """``text`` with the lines at ``indexes`` commented out (marked, so a reader knows why)."""
    lines = text.split("\n")
    for index in indexes:
        if not lines[index].lstrip().startswith(("#", ";")):
            lines[index] = DISABLED_PREFIX + lines[index].lstrip()
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Planning (pure)
# --------------------------------------------------------------------------


class State:
    """What was read from the host: runtime values, the sysctl.d files and their contents."""

    def __init__(
        self,
        runtime: dict[str, str | None],
        listing: dict[str, list[str]],
        contents: dict[str, str | None],
        realpaths: dict[str, str] | None = None,
        sysctl_conf_exists: bool = True,
    ) -> None:
        self.runtime = runtime  # dotted key -> value, None when the sysctl does not exist
        self.listing = listing  # search dir -> file names
        self.contents = contents  # path -> text (None when missing)
        self.realpaths = realpaths or {}  # path -> the file a symlink points to
        self.sysctl_conf_exists = sysctl_conf_exists


def _order(state: State, contents: Mapping[str, str | None], extra: Iterable[str] | None = None) -> list[str]:
    listing = {d: list(names) for d, names in state.listing.items()}
    for path in extra or ():
        directory, name = os.path.split(path)
        if directory in listing or directory in SEARCH_DIRS:
            listing.setdefault(directory, [])
            if name not in listing[directory]:
                listing[directory].append(name)
    conf = state.sysctl_conf_exists or contents.get(SYSCTL_CONF) is not None
    return config_order(listing, sysctl_conf_exists=conf)


def fix_target(state: State, path: str) -> str:
    """Where the fixed copy of ``path`` goes.

    Files under /etc are edited in place (a symlink's target when that is in
    /etc too). A vendor file (/run, /usr/lib, ...) is not touched: a copy with
    the line commented out goes to /etc/sysctl.d under the same name, which
    masks the vendor file, as systemd documents for local overrides.
    """
    real = state.realpaths.get(path, path)
    if real.startswith("/etc/"):
        return real
    return os.path.join(ETC_DIR, os.path.basename(path))


class Plan:
    def __init__(self) -> None:
        self.runtime: dict[str, dict[str, str | None]] = {}  # dotted key -> {"before", "after"}
        self.runtime_writes: list[tuple[str, str]] = []  # (dotted key, value)
        self.persistent: dict[str, dict[str, str | None]] = {}  # dotted key -> {"before", "after", "source"}
        self.overridden_by: dict[str, str | None] = {}  # dotted key -> path
        self.fixed: list[dict[str, str | int]] = []  # {"path", "written", "line", "text", "key"}
        self.writes: dict[str, tuple[str | None, str]] = {}  # path -> (before text or None, after text)
        self.warnings: list[str] = []

    @property
    def changed(self) -> bool:
        return bool(self.runtime_writes or self.writes)


def plan(state: State, desired: Mapping[str, str], sysctl_file: str, persist: bool = True, fix_overrides: bool = False) -> Plan:
    """Plan runtime writes, the drop-in and override fixes; ModuleError when impossible."""
    result = Plan()
    _plan_runtime(result, state, desired)

    parsed = {path: parse_conf(path, text) for path, text in state.contents.items() if text is not None}
    order_before = _order(state, state.contents)
    before = {key: boot_value(order_before, parsed, key_path(key)) for key in desired}
    if not persist:
        for key in desired:
            value, source = before[key]
            result.persistent[key] = {"before": value, "after": value, "source": source.path if source is not None else None}
        return result

    contents = dict(state.contents)
    new_text = render_drop_in(contents.get(sysctl_file), desired)
    if new_text != contents.get(sysctl_file):
        result.writes[sysctl_file] = (contents.get(sysctl_file), new_text)
    contents[sysctl_file] = new_text
    parsed[sysctl_file] = parse_conf(sysctl_file, new_text)
    extra = [sysctl_file]
    order = _order(state, contents, extra)
    _warn_unread(result, order, sysctl_file)
    if fix_overrides:
        order = _fix_overrides(result, state, order, contents, parsed, extra, desired, sysctl_file)
    _report_boot(result, order, parsed, desired, before, sysctl_file)
    return result


def _plan_runtime(result: Plan, state: State, desired: Mapping[str, str]) -> None:
    """Runtime: the sysctl must exist to be set (a missing one may stay off)."""
    for key, value in desired.items():
        current = state.runtime.get(key)
        if current is None:
            message = _absent_message(key)
            if value != "0":
                raise ModuleError(message + " Nothing was changed.")
            result.warnings.append(message + " There is nothing to switch off now.")
            result.runtime[key] = {"before": None, "after": None}
            continue
        result.runtime[key] = {"before": current, "after": value if not same_value(current, value) else current}
        if not same_value(current, value):
            result.runtime_writes.append((key, value))


def _warn_unread(result: Plan, order: Sequence[str], sysctl_file: str) -> None:
    """Warn when systemd-sysctl never reads the drop-in: masked, or outside its directories."""
    if sysctl_file in order:
        return
    masked = [p for p in order if os.path.basename(p) == os.path.basename(sysctl_file)]
    if masked:
        result.warnings.append(
            "%s is masked by %s (same name, higher priority directory), so systemd-sysctl never reads it."
            " Set sysctl_file to a path in /etc/sysctl.d." % (sysctl_file, masked[0])
        )
    else:
        result.warnings.append(
            "%s is not in a directory systemd-sysctl reads (%s) nor %s, so these values are not applied at boot."
            % (sysctl_file, ", ".join(SEARCH_DIRS), SYSCTL_CONF)
        )


def _fix_overrides(
    result: Plan,
    state: State,
    order: list[str],
    contents: dict[str, str | None],
    parsed: Parsed,
    extra: list[str],
    desired: Mapping[str, str],
    sysctl_file: str,
) -> list[str]:
    """Comment out the later lines that override the drop-in (fix_overrides); return the new file order."""
    for _attempt in range(3):
        conflicts = _conflicts(order, parsed, desired, sysctl_file)
        if not conflicts or sysctl_file not in order:
            break
        edits = _override_edits(state, order, parsed, conflicts, desired, sysctl_file)
        if not edits:
            break
        for target, (path, items) in sorted(edits.items()):
            _comment_out_edit(result, state, contents, parsed, extra, target, path, items)
        order = _order(state, contents, extra)
    return order


def _override_edits(
    state: State, order: list[str], parsed: Parsed, conflicts: Iterable[str], desired: Mapping[str, str], sysctl_file: str
) -> dict[str, tuple[str, dict[int, Assignment]]]:
    """target path -> (source path, {line index: Assignment}) for the lines after the drop-in that set another value."""
    edits: dict[str, tuple[str, dict[int, Assignment]]] = {}
    position = order.index(sysctl_file)
    for key in conflicts:
        for path in order[position + 1 :]:
            for item in parsed.get(path, ()):
                if not item.glob and item.value is not None and item.key == key_path(key) and not same_value(item.value, desired[key]):
                    # Two names of one file (99-sysctl.conf -> ../sysctl.conf) give one edit.
                    edits.setdefault(fix_target(state, path), (path, {}))[1][item.index] = item
    return edits


def _comment_out_edit(
    result: Plan,
    state: State,
    contents: dict[str, str | None],
    parsed: Parsed,
    extra: list[str],
    target: str,
    path: str,
    items: dict[int, Assignment],
) -> None:
    """Comment out ``items`` of ``path`` into ``target``, in the plan and in the contents seen from now on."""
    in_place = target in (path, state.realpaths.get(path))
    # items came from parsed[path], which exists only for a path whose text was read or planned
    text = cast(str, contents[path])
    old_lines = text.split("\n")
    new = comment_out(text, sorted(items))
    disk = state.contents[path] if in_place else state.contents.get(target)
    result.writes[target] = (result.writes[target][0] if target in result.writes else disk, new)
    for index, item in sorted(items.items()):
        result.fixed.append({"path": path, "written": target, "line": index + 1, "text": old_lines[index].strip(), "key": key_name(item.key)})
    aliases = {target} | {p for p in contents if state.realpaths.get(p) == target}
    if in_place:
        aliases.add(path)
    for alias in aliases:
        contents[alias] = new
        parsed[alias] = parse_conf(alias, new)
    if not in_place:
        extra.append(target)


def _report_boot(
    result: Plan,
    order: list[str],
    parsed: Parsed,
    desired: Mapping[str, str],
    before: Mapping[str, tuple[str | None, Assignment | None]],
    sysctl_file: str,
) -> None:
    """The values at boot, before and after, and what still overrides the drop-in."""
    for key in desired:
        value, source = boot_value(order, parsed, key_path(key))
        result.persistent[key] = {
            "before": before[key][0],
            "after": value,
            "source": source.path if source is not None else None,
        }
    masking = [p for p in order if os.path.basename(p) == os.path.basename(sysctl_file) and p != sysctl_file]
    for key, source in sorted(_conflicts(order, parsed, desired, sysctl_file).items()):
        if sysctl_file not in order and masking:
            result.overridden_by[key] = masking[0]
        else:
            result.overridden_by[key] = source.path if source else None
        if source is not None and sysctl_file in order:
            result.warnings.append(
                "%s = %s in %s is overridden at boot by %s. Set fix_overrides: true to comment that line out,"
                " or change it yourself." % (key, desired[key], sysctl_file, source.describe())
            )


def _conflicts(order: list[str], parsed: Parsed, desired: Mapping[str, str], sysctl_file: str) -> dict[str, Assignment | None]:
    """Dotted key -> the Assignment that wins at boot instead of ours (None: no file sets it)."""
    conflicts: dict[str, Assignment | None] = {}
    for key, value in desired.items():
        boot, source = boot_value(order, parsed, key_path(key))
        if source is not None and source.path == sysctl_file:
            continue
        if sysctl_file not in order or not same_value(boot, value):
            conflicts[key] = source
    return conflicts


def _absent_message(key: str) -> str:
    if key.startswith("net.bridge."):
        return (
            "%s does not exist: the br_netfilter module is not loaded, so bridged traffic does not pass through"
            " iptables now. Load it first (modprobe br_netfilter; list it in /etc/modules-load.d to load it at boot)"
            " if you want to set bridge_nf_call: true." % key
        )
    if key.startswith("net.ipv6."):
        return "%s does not exist: IPv6 is disabled in this kernel (ipv6.disable=1 or no ipv6 module)." % key
    return "%s does not exist in /proc/sys on this host." % key


# --------------------------------------------------------------------------
# Reading and applying (I/O)
# --------------------------------------------------------------------------


def proc_path(key: str, root: str = "") -> str:
    return root + os.path.join(PROC_SYS, key_path(key))


def read_runtime(key: str, root: str = "") -> str | None:
    try:
        with open(proc_path(key, root)) as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ModuleError("Cannot read %s: %s." % (proc_path(key), exc.strerror)) from exc


def write_runtime(key: str, value: str, root: str = "") -> None:
    try:
        with open(proc_path(key, root), "w") as handle:
            handle.write(value + "\n")
    except OSError as exc:
        raise ModuleError(
            "Cannot set %s = %s through %s: %s. /proc/sys is read-only in some containers; run this on the host itself."
            % (key, value, proc_path(key), exc.strerror)
        ) from exc


def _read_text(path: str, root: str) -> str | None:
    data: bytes | None = read_bytes(root + path)
    return None if data is None else data.decode("utf-8", "surrogateescape")


def gather(desired: Iterable[str], sysctl_file: str, persist: bool = True, root: str = "") -> State:
    """Read the runtime values and every file systemd-sysctl would read."""
    runtime = {key: read_runtime(key, root) for key in desired}
    listing: dict[str, list[str]] = {}
    contents: dict[str, str | None] = {}
    realpaths: dict[str, str] = {}
    for directory in SEARCH_DIRS:
        try:
            names = sorted(os.listdir(root + directory))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ModuleError("Cannot list %s: %s." % (directory, exc.strerror)) from exc
        listing[directory] = [n for n in names if n.endswith(".conf") and not n.startswith(".") and not os.path.isdir(root + os.path.join(directory, n))]
    for path in [*config_order(listing, sysctl_conf_exists=True), sysctl_file]:
        if path in contents:
            continue
        if os.path.islink(root + path):
            real = os.path.realpath(root + path)
            realpaths[path] = real[len(root) :] if root and real.startswith(root) else real
        contents[path] = _read_text(path, root)
    return State(runtime, listing, contents, realpaths, sysctl_conf_exists=contents.get(SYSCTL_CONF) is not None)


def normalize_sysctl_file(path: object) -> str:
    """``path`` without ``.``, ``..`` or doubled slashes; ModuleError for a name systemd-sysctl would not read.

    systemd-sysctl reads ``*.conf`` and skips hidden files, so a dot-file
    would be written and then ignored at every boot.
    """
    if not isinstance(path, str) or not os.path.isabs(path) or not path.endswith(".conf") or "\0" in path:
        raise ModuleError("sysctl_file must be an absolute path ending in .conf (systemd-sysctl reads only *.conf), got %r." % (path,))
    normal = "/" + os.path.normpath(path).lstrip("/")
    name = os.path.basename(normal)
    if name.startswith("."):
        raise ModuleError(
            "sysctl_file %s is a hidden file (its name starts with '.'); systemd-sysctl skips hidden files, so the values"
            " would never be applied at boot. Use a name such as 90-forwarding.conf." % path
        )
    if not name.endswith(".conf") or name == ".conf":
        raise ModuleError("sysctl_file must be an absolute path ending in .conf (systemd-sysctl reads only *.conf), got %r." % (path,))
    return normal


def _apply(module: Any, result_plan: Plan, root: str, directories: Collection[str]) -> None:
    """Write the files first, then the runtime values; a failure says what was already changed."""
    done: list[str] = []
    try:
        for path, (_before, after) in sorted(result_plan.writes.items()):
            if os.path.dirname(path) not in directories:
                raise ModuleError("%s changed while this task ran; run it again." % os.path.dirname(path))
            atomic_write(module, root + path, after.encode("utf-8", "surrogateescape"))
            done.append(path)
        for key, value in result_plan.runtime_writes:
            write_runtime(key, value, root)
            done.append("%s = %s (runtime)" % (key, value))
    except ModuleError as exc:
        if not done:
            raise
        raise ModuleError("%s Already changed: %s." % (exc.msg, ", ".join(done)), changed=True, **exc.result) from exc


def _make_dirs(root: str, directories: Iterable[str]) -> None:
    for directory in directories:
        if not os.path.isdir(root + directory):
            try:
                os.makedirs(root + directory, mode=0o755)
            except OSError as exc:
                raise ModuleError("Cannot create %s: %s. Nothing was changed." % (directory, exc.strerror)) from exc


def run(module: Any, root: str = "") -> dict[str, Any]:
    """The whole ip_forward task; returns the result dict (with ``warnings``)."""
    params = module.params
    if params["fix_overrides"] and not params["persist"]:
        raise ModuleError("fix_overrides needs persist: true: with persist: false this task writes no sysctl file to protect.")
    sysctl_file = normalize_sysctl_file(params["sysctl_file"])
    desired = desired_values(params)
    if not desired:
        raise ModuleError("Nothing to do: set at least one of ipv4, ipv6 or bridge_nf_call.")

    state = gather(desired, sysctl_file, params["persist"], root)
    result_plan = plan(state, desired, sysctl_file, params["persist"], params["fix_overrides"])

    if result_plan.changed and not module.check_mode:
        if result_plan.writes:
            directories = sorted({os.path.dirname(path) for path in result_plan.writes})
            _make_dirs(root, directories)
            with contextlib.ExitStack() as stack:
                for directory in directories:
                    stack.enter_context(directory_lock(root + directory))
                # Read again under the locks: another writer may have been faster.
                state = gather(desired, sysctl_file, params["persist"], root)
                result_plan = plan(state, desired, sysctl_file, params["persist"], params["fix_overrides"])
                _apply(module, result_plan, root, directories)
        else:
            _apply(module, result_plan, root, ())

    result: dict[str, Any] = {
        "changed": result_plan.changed,
        "runtime": result_plan.runtime,
        "persistent": result_plan.persistent,
        "overridden_by": result_plan.overridden_by,
        "fixed_overrides": result_plan.fixed,
        "sysctl_file": sysctl_file if params["persist"] else None,
        "warnings": result_plan.warnings,
    }
    if module._diff:
        diffs: list[dict[str, Any]] = []
        if result_plan.runtime_writes:
            diffs.append(
                {
                    "before_header": "runtime (/proc/sys)",
                    "after_header": "runtime (/proc/sys)",
                    "before": "".join("%s = %s\n" % (k, result_plan.runtime[k]["before"]) for k, _v in result_plan.runtime_writes),
                    "after": "".join("%s = %s\n" % (k, v) for k, v in result_plan.runtime_writes),
                }
            )
        for path, (before, after) in sorted(result_plan.writes.items()):
            diffs.append(text_diff(path, before, after))
        result["diff"] = diffs
    return result

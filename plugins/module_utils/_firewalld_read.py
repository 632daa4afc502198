# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewalld: read its state once, through firewall-cmd.

One snapshot holds the version, the default zone, and every zone and policy
of the runtime and of the permanent configuration, each read with one
``--list-all-zones`` / ``--list-all-policies`` call. The parsers are pure.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

if TYPE_CHECKING:
    from collections.abc import Sequence

    # name -> zone (or policy) as parse_list_all reads it: list keys as lists, forward and masquerade as bools, others as strings
    Objects = dict[str, dict[str, Any]]

SCOPES = ("permanent", "runtime")
LIST_KEYS = ("interfaces", "sources", "services", "ingress-zones", "egress-zones")
BOOL_KEYS = ("forward", "masquerade")
NOT_RUNNING_RC = 252


def parse_version(text: str | None) -> tuple[int, ...]:
    """'1.3.3' -> (1, 3, 3); unknown parts count as 0."""
    match = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", text or "")
    if not match:
        return (0, 0, 0)
    return tuple(int(part or 0) for part in match.groups())


def parse_list_all(text: str | None) -> Objects:
    """Parse ``firewall-cmd --list-all-zones`` (or ``--list-all-policies``) output.

    Returns {name: {key: value}}: list keys as lists, forward and masquerade as
    bools, others as stripped strings; ``active`` is whether the header said so.
    Continuation lines (rich rules, indented by a tab) are skipped.
    """
    objects: Objects = {}
    current: dict[str, Any] | None = None
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            name, _sep, flags = line.strip().partition(" ")
            current = {"active": "active" in flags}
            objects[name] = current
            continue
        if current is None or line.startswith("\t") or line.startswith("    "):
            continue
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        value = value.strip()
        if key in LIST_KEYS:
            current[key] = value.split()
        elif key in BOOL_KEYS:
            current[key] = value == "yes"
        else:
            current[key] = value
    return objects


class Snapshot:
    """What firewalld has, runtime and permanent, read once."""

    def __init__(
        self,
        running: bool,
        version: tuple[int, ...] | None = None,
        default_zone: str | None = None,
        zones: dict[str, Objects] | None = None,
        policies: dict[str, Objects] | None = None,
    ) -> None:
        self.running = running
        self.version = version
        self.default_zone = default_zone
        self.zones: dict[str, Objects] = zones or {scope: {} for scope in SCOPES}  # scope -> zones
        self.policies: dict[str, Objects] = policies or {scope: {} for scope in SCOPES}  # scope -> policies

    @property
    def has_policies(self) -> bool:
        return self.version is not None and self.version >= (0, 9, 0)

    def zone_of(self, interface: str, scope: str) -> str | None:
        """The zone that ``interface`` is bound to in ``scope``, or None."""
        for name, zone in self.zones[scope].items():
            if interface in zone.get("interfaces", []):
                return name
        return None

    def effective_zone(self, interface: str) -> str | None:
        """The zone firewalld applies to ``interface`` now: its runtime zone, else the default zone."""
        return self.zone_of(interface, "runtime") or self.default_zone

    def as_result(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "version": None if self.version is None else "%d.%d.%d" % self.version,
            "default_zone": self.default_zone,
        }


class FirewallCmd:
    """firewall-cmd as argument lists, through module.run_command."""

    def __init__(self, module: Any, path: str | None = None) -> None:
        self.module = module
        self.path: str | None = path or module.get_bin_path("firewall-cmd")

    def run(self, args: Sequence[str], check: bool = True) -> tuple[int, str, str]:
        """(rc, stdout, stderr) of firewall-cmd ``args``; ModuleError on failure when ``check``."""
        rc, out, err = self.module.run_command([self.path, *args])
        if check and rc != 0:
            raise ModuleError(
                "firewall-cmd %s failed (rc=%d): %s. Check firewalld's log (journalctl -u firewalld)"
                " and the names given to the task." % (" ".join(args), rc, (err or out).strip())
            )
        return rc, out, err

    def running(self) -> bool:
        if not self.path:
            return False
        rc, out, _err = self.run(["--state"], check=False)
        return rc == 0 and out.strip() == "running"


def read(cmd: FirewallCmd) -> Snapshot:
    """The Snapshot of firewalld behind ``cmd`` (a FirewallCmd); not running -> Snapshot(False)."""
    if not cmd.running():
        return Snapshot(False)
    version = parse_version(cmd.run(["--version"])[1])
    default_zone = cmd.run(["--get-default-zone"])[1].strip()
    zones: dict[str, Objects] = {}
    policies: dict[str, Objects] = {}
    for scope in SCOPES:
        prefix = ["--permanent"] if scope == "permanent" else []
        zones[scope] = parse_list_all(cmd.run([*prefix, "--list-all-zones"])[1])
        if version >= (0, 9, 0):
            policies[scope] = parse_list_all(cmd.run([*prefix, "--list-all-policies"])[1])
        else:
            policies[scope] = {}
    return Snapshot(True, version, default_zone, zones, policies)

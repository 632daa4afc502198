# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor's NetworkManager checks: what keeps a NetworkManager host from coming up, or from RHEL 10.

``findings`` is pure: from whether NetworkManager runs, the ifcfg files left in
network-scripts, and the keyfile profiles as nm_keyfile_info reads them, it
returns the problems in the doctor's shape ({check, subject, problem, fix}).

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

# Files in network-scripts that are not profiles (and backups network-scripts skips).
_NOT_PROFILES = re.compile(r"^ifcfg-lo$|(~|\.bak|\.orig|\.old|\.rpmnew|\.rpmsave|\.swp)$")

CHECKS = ("nm_ifcfg", "nm_boot")


def ifcfg_profiles(config_dir: str, listdir: Callable[[str], list[str]] = os.listdir) -> list[str]:
    """The ifcfg-* profile files in ``config_dir`` (sorted), without ifcfg-lo and backups; [] when it is missing."""
    try:
        names = listdir(config_dir)
    except OSError:
        return []
    return sorted(n for n in names if n.startswith("ifcfg-") and not _NOT_PROFILES.search(n))


def isolated_bridges(profiles: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Interface names of the bridges that a loaded keyfile makes and no loaded port profile joins: private networks for VMs."""
    loaded = [p for p in profiles if p.get("loaded")]
    joined = {p.get("controller") for p in loaded if p.get("controller")}
    out: list[Any] = []  # names from the profile records (JSON-like)
    for p in loaded:
        if p.get("type") == "bridge" and not ({p.get("interface_name"), p.get("id"), p.get("uuid")} & joined):
            out.append(p.get("interface_name") or p.get("id"))
    return sorted(out)


def findings(
    nm_running: bool, config_dir: str, ifcfg_files: Sequence[str], profiles: Sequence[Mapping[str, Any]], skip: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The problems found, in the doctor's shape."""
    problems: list[dict[str, Any]] = []
    if nm_running and ifcfg_files and "nm_ifcfg" not in skip:
        problems.append(_ifcfg_finding(config_dir, ifcfg_files))
    if "nm_boot" in skip:
        return problems
    bridges = _loaded_bridges(profiles)
    for profile in profiles:
        problems.extend(_profile_findings(profile, bridges))
    return problems


def _loaded_bridges(profiles: Sequence[Mapping[str, Any]]) -> set[str | None]:
    """The interface names, ids and UUIDs of the bridge profiles NetworkManager loads."""
    loaded = [p for p in profiles if p.get("loaded")]
    bridges = {p.get("interface_name") for p in loaded if p.get("type") == "bridge"}
    bridges |= {p.get("id") for p in loaded if p.get("type") == "bridge"}
    bridges |= {p.get("uuid") for p in loaded if p.get("type") == "bridge"}
    return bridges


def _ifcfg_finding(config_dir: str, ifcfg_files: Sequence[str]) -> dict[str, str]:
    """The nm_ifcfg finding: ifcfg files left on a host that NetworkManager runs."""
    shown = ", ".join(ifcfg_files[:5]) + (" and %d more" % (len(ifcfg_files) - 5) if len(ifcfg_files) > 5 else "")
    return {
        "check": "nm_ifcfg",
        "subject": config_dir,
        "problem": (
            "NetworkManager runs this host, and %d ifcfg file(s) are left in %s (%s). The leapp upgrade to RHEL 10 "
            "refuses to start while any exists (inhibitor of its networkdeprecations actor), and NetworkManager on "
            "RHEL 10 does not read them: those devices would come up unconfigured." % (len(ifcfg_files), config_dir, shown)
        ),
        "fix": (
            "Turn them into keyfiles in /etc/NetworkManager/system-connections: nmcli connection migrate (RHEL 9, with the "
            "ifcfg-rh plugin), or for a bridge made by this collection, run playbooks/host_bridge.yml with "
            "host_bridge_backend: networkmanager and then move the ifcfg files out of %s." % config_dir
        ),
    }


def _profile_findings(profile: Mapping[str, Any], bridges: Collection[str | None]) -> list[dict[str, Any]]:
    """The nm_boot findings of one profile: a bridge or port of one that would not come up at boot as it should."""
    problems: list[dict[str, Any]] = []
    path, name = profile.get("path"), profile.get("id")
    is_bridge = profile.get("type") == "bridge"
    port_of = profile.get("controller")
    if not (is_bridge or port_of):
        return problems
    what = "bridge profile %s" % name if is_bridge else "port profile %s (of %s)" % (name, port_of)
    if not profile.get("loaded"):
        problems.append(
            {
                "check": "nm_boot",
                "subject": path,
                "problem": "NetworkManager ignores the %s: %s" % (what, "; ".join(profile.get("problems") or ["it does not load"])),
                "fix": "chown root:root %s; chmod 0600 %s; then nmcli connection load %s." % (path, path, path),
            }
        )
        return problems
    if profile.get("autoconnect") is False:
        problems.append(
            {
                "check": "nm_boot",
                "subject": path,
                "problem": "The %s has autoconnect=false: NetworkManager does not bring it up at boot." % what,
                "fix": "nmcli connection modify '%s' connection.autoconnect yes (host_bridge writes autoconnect=true)." % name,
            }
        )
    if port_of and port_of not in bridges:
        problems.append(
            {
                "check": "nm_boot",
                "subject": path,
                "problem": (
                    "The %s names the bridge %s, which has no profile NetworkManager loads: at boot the NIC waits for a "
                    "bridge that never comes, and the host has no network on it." % (what, port_of)
                ),
                "fix": (
                    "Write the bridge's profile (playbooks/host_bridge.yml with host_bridge_name: %s), or make the NIC a plain "
                    "NIC again: nmcli connection modify '%s' connection.master '' connection.slave-type ''." % (port_of, name)
                ),
            }
        )
    if port_of and "master" not in (profile.get("controller_keys") or []):
        problems.append(
            {
                "check": "nm_boot",
                "subject": path,
                "problem": (
                    "The %s names its bridge only with controller=, which NetworkManager before 1.46 (RHEL 9.0-9.3, "
                    "Debian 12) does not read: there it comes up as a plain NIC, outside the bridge." % what
                ),
                "fix": "Add master=%s and slave-type=bridge to [connection] (nm_keyfile writes both spellings)." % port_of,
            }
        )
    return problems

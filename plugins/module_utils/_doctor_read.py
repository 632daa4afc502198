# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the doctor reads, through the collection's readers, and ``run``, the doctor_info module's work.

Reading only: netlink (``_bridge_info``), libvirt (``_libvirt_iface``), the ifcfg
files (``_ifcfg``), the live iptables rules (``_firewall``), firewalld
(``_firewalld_read``), NetworkManager's bus and keyfiles (``_nm``,
``_keyfile_io``), the DHCP clients (``_dhcp_client``) and ``ip -j addr show``.
The decisions are in ``_doctor`` and the other checks' module_utils.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils import _doctor as doc
from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_info import add_domains, gather
from ansible_collections.kvmhost.bridging.plugins.module_utils._dhcp_client import client_info, find_clients, find_daemons
from ansible_collections.kvmhost.bridging.plugins.module_utils._dhcp_client import doctor_problems as dhcp_problems
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import read_bytes
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewall import (
    build_request,
    check_firewalld,
    default_backend,
    discover_backends,
    plan_live,
    read_live,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_check import problems as firewalld_problems
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_read import FirewallCmd
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_read import read as read_firewalld
from ansible_collections.kvmhost.bridging.plugins.module_utils._ifcfg_codec import display, parse
from ansible_collections.kvmhost.bridging.plugins.module_utils._iptables_save import ANY
from ansible_collections.kvmhost.bridging.plugins.module_utils._keyfile_io import read_info
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_iface import read_domains
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_routing import doctor_problems as routing_problems
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm import Bus
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm_doctor import findings, ifcfg_profiles, isolated_bridges

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

# reject_rule's parameters for "is bridged traffic accepted before the REJECT rules?" (accept_first, read only)
_ACCEPT_FIRST = {
    "chain": "FORWARD", "table": "filter", "reject_with": ANY, "state": "absent", "accept_bridged": True, "persist": False,
    "rules_file": None, "rules_file_ipv6": None, "ip_version": "ipv4",
}  # fmt: skip


def read_ifcfg(config_dir: str) -> dict[str, dict[str, Any]]:
    """The ifcfg files of ``config_dir`` as NetworkManager reads them, per device (``_doctor.ifcfg_devices``)."""
    files = {}
    for name in ifcfg_profiles(config_dir):
        data = read_bytes(os.path.join(config_dir, name))
        if data is not None:
            files[name] = {key: display(value) for key, value in parse(data).items()}
    return doc.ifcfg_devices(files)


def read_forward(module: Any) -> doc.Forward | None:
    """The live IPv4 FORWARD chain of every iptables backend; None where firewalld runs or iptables is missing."""
    try:
        check_firewalld(module)
        backends = discover_backends(module, "ipv4")
        documents = [(backend.name, read_live(module, backend)) for backend in backends]
        request = build_request(_ACCEPT_FIRST)
        accept_missing = plan_live(request, "ipv4", documents, default_backend(module, "ipv4", backends))
    except ModuleError:
        return None
    rejects: list[Any] = []
    for _name, document in documents:
        table = document.tables.get("filter")
        rejects.extend(line.text for line in (table.chain_rules("FORWARD") if table else []) if line.rule.is_reject(ANY))
    return doc.Forward(rejects=rejects, accept_bridged_first=not accept_missing)


def read_addresses(module: Any) -> list[dict[str, Any]]:
    """``ip -j addr show``: the addresses with their scope and lifetimes."""
    ip = module.get_bin_path("ip", required=True)
    rc, out, err = module.run_command([ip, "-j", "addr", "show"])
    if rc != 0:
        raise ModuleError("ip -j addr show failed (rc=%d): %s" % (rc, (err or out).strip()))
    addresses: list[dict[str, Any]] = json.loads(out or "[]")  # ip -j prints a list of links
    return addresses


def nm_runs(module: Any) -> bool:
    """Whether NetworkManager owns its name on the system bus (not a process name: containers and labs show others')."""
    busctl = module.get_bin_path("busctl")
    return bool(busctl) and Bus(module.run_command, busctl).name_has_owner()


def _wanted(checks: Iterable[str], skip: Collection[str]) -> bool:
    return any(check not in skip for check in checks)


def read_firewalld_checks(module: Any, info: dict[str, Any], skip: Collection[str]) -> dict[str, Any] | None:
    """firewalld's snapshot and its problems for the bridges; None when its checks are all skipped."""
    if not _wanted(doc.FIREWALLD_CHECKS, skip):
        return None
    snapshot = read_firewalld(FirewallCmd(module))
    if not snapshot.running:
        return {"firewalld": snapshot.as_result(), "problems": []}
    nf = info["forwarding"].get("bridge_nf_call_iptables")
    return {"firewalld": snapshot.as_result(), "problems": firewalld_problems(snapshot, info["bridges"], nf)}


def read_routing(module: Any, info: dict[str, Any], skip: Collection[str]) -> dict[str, Any] | None:
    """The libvirt_routing check over the active libvirt networks, ``iptables-save -t filter`` and, for libvirt's
    nftables backend (libvirt 10+), ``nft -j list ruleset``."""
    if "libvirt_routing" in skip:
        return None
    networks = [net for net in (info.get("libvirt") or {}).get("networks") or () if net.get("active")]
    save = nft_text = ""
    if len(networks) > 1:
        iptables_save = module.get_bin_path("iptables-save")
        if iptables_save:
            rc, out, _err = module.run_command([iptables_save, "-t", "filter"])
            save = out if rc == 0 else ""
        nft = module.get_bin_path("nft")
        if nft:
            rc, out, _err = module.run_command([nft, "-j", "list", "ruleset"])
            nft_text = out if rc == 0 else ""
    problems, lines = routing_problems(networks, save, nft_text)
    return {"problems": problems, "lines": lines}


def run(module: Any) -> dict[str, Any]:
    """Read the host, run every check not skipped, and return the problems and the report."""
    params = module.params
    skip = params["skip"]
    unknown = sorted(set(skip) - set(doc.CHECKS))
    if unknown:
        raise ModuleError("skip names unknown checks: %s; the checks are %s." % (", ".join(unknown), ", ".join(doc.CHECKS)))
    uri = params["libvirt_uri"] or None
    info = add_domains(gather(), read_domains(uri))
    addresses = read_addresses(module)
    nm_running = nm_runs(module)
    manager = params["network_manager"]
    profiles = read_info(params["keyfile_dir"])["profiles"] if os.path.isdir(params["keyfile_dir"]) else []
    readings = doc.Readings(
        info=info,
        ifcfg=read_ifcfg(params["config_dir"]),
        forward=read_forward(module) if "reject_rule" not in skip else None,
        addresses=addresses,
        nm_running=manager == "running" or (manager == "auto" and nm_running),
    )
    core = doc.core_problems(readings, skip, isolated_bridges(profiles))
    nm_skip = [c for c in doc.NM_CHECKS if c in skip]
    nm = findings(nm_running, params["config_dir"], ifcfg_profiles(params["config_dir"]), profiles, nm_skip)
    dhcp: list[doc.Problem] = []
    if _wanted(doc.DHCP_CHECKS, skip):
        clients = [client_info(c) for c in find_clients(None)]
        dhcp = dhcp_problems(addresses, clients, daemons=tuple(find_daemons()), skip=tuple(skip))
    libvirt = info["libvirt"]
    outcome = doc.combine(core, read_firewalld_checks(module, info, skip), nm, dhcp, read_routing(module, info, skip),
                          libvirt["status"], skip)  # fmt: skip
    return {
        "changed": False,
        "problems": outcome.problems,
        "not_run": outcome.not_run,
        "report": doc.report(params["name"], outcome, skip, libvirt, info["report"]),
        "info": info,
    }

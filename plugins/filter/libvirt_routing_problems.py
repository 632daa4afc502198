# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: libvirt_routing_problems
short_description: The doctor's libvirt_routing check, from libvirt's networks and the iptables filter rules
version_added: 0.1.0
description:
  - For every pair of active libvirt networks with an IPv4 subnet, and for each network against the LAN, walks a new
    connection through the FORWARD chain of C(iptables-save -t filter) and says whether it passes or which rule in
    which chain rejects it.
  - With libvirt's nftables backend (libvirt 10+), walks the forward hook's filter base chains of C(nft -j list ruleset)
    in priority order instead (an accept ends one base chain; a drop or reject in any is final).
  - A rejected direction between two networks is a problem, with its fix; the lines for the LAN are information
    (a NAT network takes no new connections from outside, by design).
options:
  _input:
    description: C(bridge_info)'s C(libvirt.networks).
    type: list
    elements: dict
    required: true
  save:
    description: The output of C(iptables-save -t filter).
    type: str
    required: true
  nft:
    description: The output of C(nft -j list ruleset); empty when nft is not there.
    type: str
    default: ""
    version_added: 0.1.0
  skip:
    description: The doctor's skipped checks; with C(libvirt_routing) in it, nothing is returned.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Check the routing between libvirt networks
  ansible.builtin.set_fact:
    found: "{{ info.libvirt.networks | kvmhost.bridging.libvirt_routing_problems(save.stdout) }}"
"""

RETURN = r"""
_value:
  description: C(problems) (dicts with check, subject, problem, fix) and C(lines) (one per direction).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_routing import doctor_problems


def libvirt_routing_problems(networks, save, skip=(), nft=""):
    if "libvirt_routing" in (skip or ()):
        return {"problems": [], "lines": []}
    try:
        problems, lines = doctor_problems(networks or [], save, nft)
    except ModuleError as exc:
        raise AnsibleFilterError(exc.msg) from exc
    return {"problems": problems, "lines": lines}


class FilterModule:
    def filters(self):
        return {"libvirt_routing_problems": libvirt_routing_problems}

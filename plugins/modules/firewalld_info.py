#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: firewalld_info
short_description: Read firewalld's zones and policies and check the bridges against them
version_added: 0.1.0
description:
  - Reads whether firewalld runs, its version, default zone, zones and policies (runtime and permanent, through
    C(firewall-cmd)), and the host's bridges (netlink), and reports each bridge's zone.
  - Returns the problems the doctor role reports, each with its fix; V(firewalld_block), a bridge whose guests firewalld
    blocks (in no zone while C(bridge-nf-call-iptables=1)); V(firewalld_zone), a bridge in no zone (it falls into the
    default zone) or bound at runtime only; V(firewalld_forward), a bridge's zone without intra-zone forwarding while
    C(bridge-nf-call-iptables=1); V(firewalld_libvirt), libvirt's zone holding a LAN bridge, or a libvirt network
    whose zone blocks its guests.
  - Changes nothing. Where firewalld does not run, returns RV(firewalld.running=false) and no problems.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options: {}
seealso:
  - module: kvmhost.bridging.firewalld_forward
"""

EXAMPLES = r"""
- name: Read firewalld and check the bridges
  kvmhost.bridging.firewalld_info:
  register: fw

- name: Show the problems
  ansible.builtin.debug:
    var: fw.problems
"""

RETURN = r"""
firewalld:
  description: Whether firewalld runs, its version and its default zone.
  returned: always
  type: dict
  sample: {running: true, version: 1.3.3, default_zone: public}
  contains:
    running:
      description: Whether firewalld runs (C(firewall-cmd --state)).
      type: bool
    version:
      description: firewalld's version, or V(null) when it does not run.
      type: str
    default_zone:
      description: The default zone, or V(null) when firewalld does not run.
      type: str
zones:
  description: The runtime zones, each with C(interfaces), C(forward), C(masquerade) and C(target); empty when firewalld does not run.
  returned: always
  type: dict
policies:
  description: The runtime policies, each with C(ingress-zones), C(egress-zones), C(target) and C(masquerade).
  returned: always
  type: dict
bridges:
  description: Per bridge, C(zone) (runtime), C(zone_permanent), C(effective_zone) and whether libvirt manages it (C(libvirt)).
  returned: always
  type: list
  elements: dict
problems:
  description: The problems found, each with C(check), C(subject), C(problem) and C(fix).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_info import gather
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_check import bridge_zones, problems
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_read import FirewallCmd, read

KEYS = ("interfaces", "forward", "masquerade", "target", "ingress-zones", "egress-zones")


def run(module):
    snapshot = read(FirewallCmd(module))
    result = {"changed": False, "firewalld": snapshot.as_result(), "zones": {}, "policies": {}, "bridges": [], "problems": []}
    if not snapshot.running:
        return result
    info = gather()
    result["zones"] = {name: {k: v for k, v in zone.items() if k in KEYS} for name, zone in snapshot.zones["runtime"].items()}
    result["policies"] = {name: {k: v for k, v in pol.items() if k in KEYS} for name, pol in snapshot.policies["runtime"].items()}
    result["bridges"] = bridge_zones(snapshot, info["bridges"])
    result["problems"] = problems(snapshot, info["bridges"], info["forwarding"].get("bridge_nf_call_iptables"))
    return result


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: firewalld_forward
short_description: Let guests' traffic through firewalld with zones, intra-zone forwarding and policies
version_added: 0.1.0
description:
  - Puts interfaces (bridges, NICs) into firewalld zones, turns a zone's intra-zone forwarding and masquerade on or
    off, and adds, changes or removes firewalld policies between zones, in the runtime and in the permanent
    configuration, so that C(firewall-cmd --reload) and a restart of firewalld keep it.
  - With O(bridges) the module decides by itself, per bridge. A bridge with an uplink (a NIC), or without a host
    address, goes into a zone with intra-zone forwarding (O(bridged_zone), else the zone the bridge or its uplink is
    in, else the default zone), so that its guests get through when C(bridge-nf-call-iptables=1). A bridge without an
    uplink but with a host address is routed; it goes into O(routed_zone), and one policy per direction of
    O(routed_directions) joins it to O(routed_to_zone). firewalld applies policies only to interfaces bound to a
    zone, so when O(routed_to_zone) is the default zone, the host's interfaces with an address and no zone are bound
    to it explicitly (for them nothing else changes, they were in the default zone already).
  - Works through C(firewall-cmd) only, never with direct rules. It reads the runtime and the permanent
    configuration once (C(--list-all-zones), C(--list-all-policies)), plans, then applies the permanent changes,
    reloads firewalld where the runtime needs it (new zones and policies exist in the permanent configuration
    only), and applies the runtime changes.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the zones and policies the task touches, in the permanent configuration and at runtime, before and after.
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  zones:
    description:
      - Zones and what they must have. A zone that does not exist is created.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The zone.
        type: str
        required: true
      interfaces:
        description:
          - Interfaces that must be in this zone; an interface in another zone moves here (C(--change-interface)).
          - Interfaces in the zone but not listed stay.
        type: list
        elements: str
        default: []
      forward:
        description:
          - Intra-zone forwarding (C(--add-forward)), firewalld 0.9 and later. Omit to leave it.
        type: bool
      masquerade:
        description: Masquerade of traffic leaving through this zone. Omit to leave it.
        type: bool
  policies:
    description:
      - Policies between zones (firewalld 0.9 and later). A missing policy is created; its zones, target and
        masquerade are set to these exactly.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The policy.
        type: str
        required: true
      state:
        description: V(absent) removes the policy.
        type: str
        choices: [present, absent]
        default: present
      ingress_zones:
        description: Zones (or V(ANY), V(HOST)) the traffic comes from.
        type: list
        elements: str
        default: []
      egress_zones:
        description: Zones (or V(ANY), V(HOST)) the traffic goes to.
        type: list
        elements: str
        default: []
      target:
        description: What the policy does with the traffic.
        type: str
        choices: [CONTINUE, ACCEPT, DROP, REJECT]
        default: ACCEPT
      masquerade:
        description: Masquerade the traffic the policy matches (a NAT network).
        type: bool
        default: false
  bridges:
    description:
      - Bridges to let the guests' traffic through, by name; V(*) is every bridge on the host except libvirt's own
        (C(virbrN), or bridges in the C(libvirt) or C(libvirt-routed) zone).
      - See the description for the zone and policies each bridge gets.
    type: list
    elements: str
    default: []
  bridged_zone:
    description:
      - The zone of bridges with an uplink and of bridges without a host address.
      - Omit to keep the zone the bridge is in, else take the zone of its uplink, else the default zone.
    type: str
  routed_zone:
    description: The zone of routed bridges (no uplink, a host address). Created when missing.
    type: str
    default: kvmb-routed
  routed_to_zone:
    description: The zone routed bridges route to (the LAN's). Omit for the default zone.
    type: str
  routed_directions:
    description:
      - The directions in which routed bridges' traffic passes, each a policy named C(<routed_zone>-out) or
        C(<routed_zone>-in) with target ACCEPT. V(out) is from the routed zone to O(routed_to_zone), V(in) the
        reverse. A direction not listed has its policy removed.
    type: list
    elements: str
    choices: [out, in]
    default: [out]
  routed_masquerade:
    description: Masquerade the traffic of the V(out) policy (guests reach the LAN under the host's address).
    type: bool
    default: false
  require_running:
    description:
      - Fail when firewalld is not running. With V(false) the module then changes nothing and returns
        RV(firewalld.running=false).
    type: bool
    default: true
notes:
  - The reload that new zones and policies need also drops runtime-only settings of firewalld that are not in its
    permanent configuration (firewalld keeps the interface bindings); RV(reloaded) says when it happened.
  - On a host where NetworkManager manages an interface, C(firewall-cmd --permanent --change-interface) stores the
    zone in the interface's NetworkManager profile.
  - Leaves C(net.bridge.bridge-nf-call-iptables) as it is; set it with kvmhost.bridging.ip_forward.
seealso:
  - module: kvmhost.bridging.ip_forward
  - module: kvmhost.bridging.reject_rule
  - name: firewalld policies
    description: Policies, ingress and egress zones, and intra-zone forwarding.
    link: https://firewalld.org/documentation/concepts.html
"""

EXAMPLES = r"""
- name: Let the guests of every bridge through firewalld
  kvmhost.bridging.firewalld_forward:
    bridges: ['*']

- name: Route an isolated bridge to the LAN in both directions, and back
  kvmhost.bridging.firewalld_forward:
    bridges: [brlab0]
    routed_to_zone: public
    routed_directions: [out, in]

- name: Zones and a policy by hand
  kvmhost.bridging.firewalld_forward:
    zones:
      - name: public
        interfaces: [breth0]
        forward: true
      - name: vmnat
        interfaces: [brnat0]
        forward: true
    policies:
      - name: vmnat-out
        ingress_zones: [vmnat]
        egress_zones: [public]
        target: ACCEPT
        masquerade: true
"""

RETURN = r"""
changes:
  description: The firewall-cmd calls made (to be made in check mode), in order.
  returned: always
  type: list
  elements: dict
  sample:
    - {scope: permanent, kind: zone, name: public, op: change-interface, value: breth0,
       command: firewall-cmd --permanent --zone=public --change-interface=breth0}
reloaded:
  description: Whether the task reloaded firewalld.
  returned: always
  type: bool
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
bridges:
  description:
    - Per bridge of O(bridges), its kind (V(bridged), V(isolated) or V(routed)), zone, uplinks, host address,
      the policies joining it to other zones, and C(msg), what was done.
    - firewalld applies a policy only to interfaces bound to a zone. When the routed bridges' policies lead to the
      default zone, the host's addressed interfaces that are in no zone (so already in the default zone) are bound to
      it explicitly; one more entry of kind V(policy_zone) names them under C(interfaces).
  returned: always
  type: list
  elements: dict
summary:
  description: What was done, one line per bridge and one for firewalld.
  returned: always
  type: list
  elements: str
msg:
  description: RV(summary) in one line.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_apply import run


def main():
    module = AnsibleModule(
        argument_spec={
            "zones": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "interfaces": {"type": "list", "elements": "str", "default": []},
                    "forward": {"type": "bool"},
                    "masquerade": {"type": "bool"},
                },
            },
            "policies": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
                    "ingress_zones": {"type": "list", "elements": "str", "default": []},
                    "egress_zones": {"type": "list", "elements": "str", "default": []},
                    "target": {"type": "str", "choices": ["CONTINUE", "ACCEPT", "DROP", "REJECT"], "default": "ACCEPT"},
                    "masquerade": {"type": "bool", "default": False},
                },
            },
            "bridges": {"type": "list", "elements": "str", "default": []},
            "bridged_zone": {"type": "str"},
            "routed_zone": {"type": "str", "default": "kvmb-routed"},
            "routed_to_zone": {"type": "str"},
            "routed_directions": {"type": "list", "elements": "str", "choices": ["out", "in"], "default": ["out"]},
            "routed_masquerade": {"type": "bool", "default": False},
            "require_running": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

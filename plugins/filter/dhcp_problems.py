# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor's DHCP checks, in Python (the doctor role's tasks/dhcp.yml calls it)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: dhcp_problems
short_description: DHCP clients on bridge ports, and bridge leases nothing renews
version_added: 0.1.0
description:
  - Reads a host's addresses (C(ip -j addr show)) and its DHCP clients (M(kvmhost.bridging.dhcp_client_info)) and
    returns the problems the P(kvmhost.bridging.doctor#role) role reports.
  - V(dhcp_port) is a C(dhclient), C(dhcpcd) or C(udhcpc) bound to a bridge port. V(dhcp_expiry) is a bridge address
    with a lifetime that no DHCP client on the bridge renews (not checked while NetworkManager or systemd-networkd
    run, which renew their leases themselves).
options:
  _input:
    description: The parsed output of C(ip -j addr show).
    type: list
    elements: dict
    required: true
  clients:
    description: The RV(kvmhost.bridging.dhcp_client_info#module:clients) of M(kvmhost.bridging.dhcp_client_info).
    type: list
    elements: dict
    required: true
  daemons:
    description: Its RV(kvmhost.bridging.dhcp_client_info#module:daemons).
    type: list
    elements: str
    default: []
  skip:
    description: Ids of checks not to run.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Find the DHCP problems
  ansible.builtin.set_fact:
    problems: "{{ addresses.stdout | from_json | kvmhost.bridging.dhcp_problems(dhcp.clients, dhcp.daemons) }}"
"""

RETURN = r"""
_value:
  description: The problems, each with C(check), C(subject), C(problem) and C(fix).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kvmhost.bridging.plugins.module_utils._dhcp_client import doctor_problems


def dhcp_problems(links, clients, daemons=(), skip=()):
    if not isinstance(links, list) or not isinstance(clients, list):
        raise AnsibleFilterError("dhcp_problems takes the list of 'ip -j addr show' and the clients of dhcp_client_info.")
    return doctor_problems(links, clients, daemons=tuple(daemons or ()), skip=tuple(skip or ()))


class FilterModule:
    def filters(self):
        return {"dhcp_problems": dhcp_problems}

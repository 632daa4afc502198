#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dhcp_client_info
short_description: Find the DHCP clients that hold the leases of interfaces
version_added: 0.1.0
description:
  - Lists the C(dhclient), C(dhcpcd) and C(udhcpc) processes bound to one interface each, from their command lines,
    and says whether NetworkManager or systemd-networkd run (they keep their DHCP clients inside). Read-only.
  - Only processes in the module's own network namespace count, where the interface names mean what they say.
  - M(kvmhost.bridging.bridge) moves these clients from a NIC to the bridge; the P(kvmhost.bridging.doctor#role) role
    reads them to flag a client left on a bridge port.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options:
  interfaces:
    description:
      - The interfaces whose clients to list; empty lists the clients of every interface.
    type: list
    elements: str
    default: []
seealso:
  - module: kvmhost.bridging.bridge
"""

EXAMPLES = r"""
- name: Find the DHCP client of eth0 before bridging it
  kvmhost.bridging.dhcp_client_info:
    interfaces: [eth0]
  register: eth0_dhcp
"""

RETURN = r"""
clients:
  description: The DHCP clients, in PID order.
  returned: always
  type: list
  elements: dict
  contains:
    pid:
      description: The process id.
      type: int
      sample: 812
    name:
      description: The client program.
      type: str
      sample: dhclient
    interface:
      description: The interface it serves.
      type: str
      sample: eth0
    family:
      description: V(ipv4) or V(ipv6).
      type: str
      sample: ipv4
    argv:
      description: Its command line.
      type: list
      elements: str
      sample: [dhclient, "-1", "-q", "-lf", /var/lib/dhclient/dhclient--eth0.lease, "-pf", /var/run/dhclient-eth0.pid, eth0]
daemons:
  description: The network daemons that run (V(NetworkManager), V(systemd-networkd)).
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._dhcp_client import client_info, find_clients, find_daemons
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit


def run(module):
    wanted = module.params["interfaces"]
    clients = find_clients(wanted) if wanted else find_clients(None)
    return {"changed": False, "clients": [client_info(c) for c in clients], "daemons": find_daemons()}


def main():
    module = AnsibleModule(
        argument_spec={"interfaces": {"type": "list", "elements": "str", "default": []}},
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

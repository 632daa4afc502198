#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_routing
short_description: Let libvirt networks reach each other both ways, NAT networks keeping their NAT
version_added: 0.1.0
description:
  - libvirt's iptables rules let a NAT network take only replies, so a guest on another network of the same host
    cannot open a connection to a guest on the NAT network ("A can ping B, B cannot ping A").
  - For every ordered pair of the listed networks this module accepts new connections in libvirt's C(LIBVIRT_FWX)
    chain and, when the source network is NAT, returns early from the nat table's C(LIBVIRT_PRT) chain so that
    traffic between the networks is routed, not masqueraded. Each network keeps its forward mode; a NAT network keeps
    its NAT to the outside world.
  - The rules are applied at once and by a libvirt network hook (O(hook_path)) on every start of a listed network,
    since libvirt rebuilds its own rules then. libvirtd reads its hooks when it starts, so after the hook is first
    written (RV(hook_changed)) libvirtd must be restarted once (the kvmhost.bridging.libvirt_routing role does it).
  - Works with libvirt's iptables firewall backend (libvirt 9 and older, EL9).
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the hook script and the module's iptables rules, before and after.
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  networks:
    description:
      - Names of the libvirt networks that reach each other (at least two with O(state=present)).
      - Unknown names, networks without a bridge or IPv4 subnet, networks in C(bridge) or device forward modes and
        networks whose subnets overlap fail the module before anything changes.
    type: list
    elements: str
    default: []
  uri:
    description:
      - The libvirt URI the networks are read from.
    type: str
    default: qemu:///system
  hook_path:
    description:
      - Where the libvirt network hook script is written (libvirt 6.5 and later run every executable of
        C(/etc/libvirt/hooks/network.d)).
    type: path
    default: /etc/libvirt/hooks/network.d/50-kvmhost-bridging-routing
  state:
    description:
      - V(absent) removes the hook and every rule the module added; O(networks) is then not needed.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - libvirt-python (python3-libvirt) on the host.
  - iptables.
"""

EXAMPLES = r"""
- name: Route between natnet and rtnet both ways
  kvmhost.bridging.libvirt_routing:
    networks: [natnet, rtnet]

- name: Undo it
  kvmhost.bridging.libvirt_routing:
    state: absent
"""

RETURN = r"""
networks:
  description: The networks and what is done for each.
  returned: always
  type: list
  elements: dict
  sample: [{"network": "natnet", "bridge": "virbr2", "forward": "nat", "subnets": ["198.18.122.0/24"],
            "method": "hook: NAT kept to the outside, new connections from the other networks accepted, no NAT between them"}]
rules:
  description: The iptables rules the module keeps, as commands.
  returned: always
  type: list
  elements: str
hook:
  description: The path of the hook script.
  returned: always
  type: str
hook_changed:
  description: Whether the hook script was written or removed; libvirtd then needs a restart to run it.
  returned: always
  type: bool
uri:
  description: The libvirt URI.
  returned: always
  type: str
"""

import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_dep import assert_libvirt
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_iface import networks_of, open_connection
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_routing import ensure


def run(module):
    params = module.params
    networks = []
    if params["state"] == "present":
        conn = open_connection(params["uri"])
        try:
            networks = networks_of(conn)
        finally:
            conn.close()
    return ensure(module, params["networks"], params["uri"], params["hook_path"], sys.executable, networks,
                  state=params["state"], check_mode=module.check_mode)


def main():
    module = AnsibleModule(
        argument_spec={
            "networks": {"type": "list", "elements": "str", "default": []},
            "uri": {"type": "str", "default": "qemu:///system"},
            "hook_path": {"type": "path", "default": "/etc/libvirt/hooks/network.d/50-kvmhost-bridging-routing"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    if module.params["state"] == "present":
        assert_libvirt(module)
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

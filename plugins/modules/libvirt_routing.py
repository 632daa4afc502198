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
  - Works with libvirt's iptables firewall backend (libvirt 9 and older, EL9) and its nftables backend (libvirt 10+
    with C(firewall_backend = "nftables"), EL10). With nftables the rules go into libvirt's own table
    C(ip libvirt_network), accepts at the top of C(guest_cross) (the first chain its forward chain jumps to) and, for
    a NAT source, a C(return) at the top of C(guest_nat), in one C(nft -f) transaction. A forward chain of another
    table cannot do it, since an accept ends only its own base chain and libvirt's reject in a later one still drops.
  - The other way, per network (O(method), O(methods)), is to change the network's forward mode to C(route) or
    C(open) in libvirt's own definition (net-define, then a restart of the network when it runs), where the network
    needs no NAT. libvirt's own rules then route it; no rules of this module are kept between two such networks.
    A restart re-creates the network's bridge; the ports that were on the old one (running guests' taps) must be
    plugged into it again.
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
      - V(absent) removes the hook and every rule the module added; O(networks) is then not needed. Forward modes
        changed by O(method) stay.
    type: str
    choices: [present, absent]
    default: present
  method:
    description:
      - What is done for each network not named in O(methods).
      - V(rules) keeps the network's forward mode (a NAT network keeps its NAT to the outside) and adds the rules and
        the hook.
      - V(route) or V(open) changes the network's forward mode to that, through libvirt's definition; a NAT network
        loses its NAT to the outside. Use it where NAT is not needed.
    type: str
    choices: [rules, route, open]
    default: rules
  methods:
    description:
      - "O(method) per network name, for example C({natnet: rules, labnet: route}); names must be in O(networks)."
    type: dict
    default: {}
  backend:
    description:
      - libvirt's firewall backend. V(auto) takes the one whose rules libvirt made (its nftables table
        C(ip libvirt_network) or its iptables chains), then C(firewall_backend) of C(/etc/libvirt/network.conf).
    type: str
    choices: [auto, iptables, nftables]
    default: auto
requirements:
  - libvirt-python (python3-libvirt) on the host.
  - iptables (libvirt's iptables backend) or nft (its nftables backend).
"""

EXAMPLES = r"""
- name: Route between natnet and rtnet both ways
  kvmhost.bridging.libvirt_routing:
    networks: [natnet, rtnet]

- name: Route natnet (keeping its NAT) and labnet (switched to route mode, no NAT) both ways
  kvmhost.bridging.libvirt_routing:
    networks: [natnet, labnet]
    methods:
      labnet: route

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
            "method_name": "rules",
            "method": "hook: NAT kept to the outside, new connections from the other networks accepted, no NAT between them"}]
backend:
  description: libvirt's firewall backend the rules were made for (C(iptables) or C(nftables)).
  returned: always
  type: str
  sample: nftables
forward_modes_changed:
  description: The networks whose forward mode was changed (or would be, in check mode).
  returned: always
  type: list
  elements: str
rules:
  description: The iptables or nft rules the module keeps, as commands.
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
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_routing import choose_methods, ensure


def run(module):
    params = module.params
    if params["state"] == "absent":
        return ensure(
            module, [], params["uri"], params["hook_path"], sys.executable, [], state="absent", check_mode=module.check_mode, backend=params["backend"]
        )
    methods = choose_methods(params["networks"], params["method"], params["methods"])
    conn = open_connection(params["uri"])
    try:
        return ensure(
            module,
            params["networks"],
            params["uri"],
            params["hook_path"],
            sys.executable,
            networks_of(conn),
            check_mode=module.check_mode,
            backend=params["backend"],
            methods=methods,
            conn=conn,
        )
    finally:
        conn.close()


def main():
    module = AnsibleModule(
        argument_spec={
            "networks": {"type": "list", "elements": "str", "default": []},
            "uri": {"type": "str", "default": "qemu:///system"},
            "hook_path": {"type": "path", "default": "/etc/libvirt/hooks/network.d/50-kvmhost-bridging-routing"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "method": {"type": "str", "choices": ["rules", "route", "open"], "default": "rules"},
            "methods": {"type": "dict", "default": {}},
            "backend": {"type": "str", "choices": ["auto", "iptables", "nftables"], "default": "auto"},
        },
        supports_check_mode=True,
    )
    if module.params["state"] == "present":
        assert_libvirt(module)
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bridge
short_description: Runtime Linux bridges over netlink, with the NIC's addresses and routes moved without a network restart
version_added: 0.1.0
description:
  - Creates, changes and removes a Linux bridge in the running kernel over netlink (pyroute2), never with
    C(service network restart), C(ip) or C(brctl). It does not write any configuration file; see M(kvmhost.bridging.ifcfg)
    to make the bridge persistent.
  - Reads links, addresses and routes with one dump, plans the difference and applies only that. The planned steps are
    returned as RV(actions) and, in diff mode, as a before/after view of the bridge.
  - The dumps are read with the Python standard library; pyroute2 is imported only to apply a change, so a run with
    nothing to do and check mode work without it.
  - With O(migrate_addresses), the IPv4/IPv6 addresses and routes (default route too) of the ports move to the bridge in
    an order that keeps an SSH session over the NIC alive. The bridge is created down, with the NIC's MAC and the
    requested options, and brought up; the addresses are added to the bridge with the same prefix; the NIC becomes a port; each route
    is moved to the bridge with one atomic replace keeping its gateway, metric, scope, protocol and table; only then
    are the addresses removed from the NIC. Peers' ARP entries stay valid because the MAC does not change.
  - If a step fails, the steps already applied are undone in reverse order (ports released, addresses, routes and
    link states put back, a bridge created by this task deleted) before the task fails with the cause. The result
    says whether the previous runtime state was restored exactly.
  - Bad input fails with nothing changed, naming the problem, for example a port that does not exist, a port of
    another bridge or bond, the bridge as its own port, a bridge or a device stacked on the bridge as a port, both
    ends of one veth pair, V(lo), an invalid name.
  - Refuses, unless O(force=true), to remove or bring down the bridge that carries the address the Ansible connection
    uses, to detach (O(ports_exclusive)) a port of that bridge that is not a guest's tap, and to make the NIC carrying
    that address a port without moving the address. The address comes from
    C(SSH_CONNECTION) on the managed host (also from the login shell's environment when become drops it).
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.PYROUTE2
attributes:
  check_mode:
    support: full
    details: In check mode the kernel is not touched; RV(actions) and the diff show what would be done.
  diff_mode:
    support: full
  idempotent:
    support: full
  platform:
    platforms: linux
options:
  name:
    description:
      - Name of the bridge, for example V(breth0).
      - At most 15 characters, without V(/), V(:), V(%) or white space.
    type: str
    required: true
  state:
    description:
      - V(present) creates the bridge or brings it to the requested settings.
      - V(absent) deletes the bridge; its ports are released and its addresses go with it.
    type: str
    choices: [present, absent]
    default: present
  ports:
    description:
      - Interfaces to make ports of the bridge, for example the NIC V(eth1) and a guest's tap V(vnet0).
      - Every port must exist and must not be a port of another bridge or bond.
      - Ports that are down are brought up when O(up=true).
    type: list
    elements: str
    default: []
  ports_exclusive:
    description:
      - When V(true), ports of the bridge that are not in O(ports) are detached.
      - When V(false), other ports are left as they are.
    type: bool
    default: false
  stp:
    description:
      - Run the spanning tree protocol on the bridge. Unset leaves the current setting (off for a new bridge).
    type: bool
  forward_delay:
    description:
      - Forwarding delay in seconds, like C(DELAY) in ifcfg files. Unset leaves the current value (15 for a new bridge).
      - With O(stp=true) the kernel accepts 2 to 30 seconds; without STP any value, V(0) is usual.
    type: float
  hello_time:
    description:
      - STP hello time in seconds, 1 to 10.
    type: float
  max_age:
    description:
      - STP maximum message age in seconds, 6 to 40.
    type: float
  ageing_time:
    description:
      - How long the bridge remembers a MAC address, in seconds (300 for a new bridge). V(0) makes the bridge flood
        every frame like a hub.
    type: float
  priority:
    description:
      - Bridge priority for STP, 0 to 65535 (lower wins the root bridge election).
    type: int
  vlan_filtering:
    description:
      - Enable VLAN filtering on the bridge.
    type: bool
  mtu:
    description:
      - MTU of the bridge. Unset lets the kernel follow the smallest MTU of the ports.
    type: int
  mac:
    description:
      - V(inherit) gives the bridge the MAC of the first port in O(ports) that is not a guest's tap, so DHCP leases and
        the ARP entries of peers stay valid when the NIC's address moves to the bridge. With no such port the
        bridge's MAC is left alone.
      - V(keep) leaves the MAC alone (a new bridge gets one from the kernel, and then follows its ports).
      - Any other value is a unicast MAC address to set, like V(52:54:00:12:34:56).
    type: str
    default: inherit
  migrate_addresses:
    description:
      - Move the IPv4 and IPv6 addresses of the ports, and the routes through the ports (the default route too, with
        their gateways, metrics, scopes, tables and protocols), to the bridge.
      - Routes move after the routes they need (on-link routes before gateway routes), so explicit prefix routes of
        C(noprefixroute) addresses, as NetworkManager and systemd-networkd set them, move with their metrics and
        source hints.
      - Link-local IPv6 addresses, temporary addresses and the kernel's own routes (prefix routes it makes for an
        address, routes learned from router advertisements, which expire) stay; the bridge makes its own.
      - Addresses keep their flags, metric and remaining lifetime.
      - The DHCP client that holds a port's lease moves too, so that the lease is renewed on the bridge and the port gets
        no address back at the next renewal. A C(dhclient), C(dhcpcd) or C(udhcpc) process bound to the port is stopped
        (SIGTERM, no release) before anything else changes, and the same command line, with the bridge's name in place
        of the port's (in the pid and lease file names too, as initscripts name them), is started last, with the lease
        file carried over. The bridge has the port's MAC (O(mac=inherit)), so the server renews the same address. The
        address goes to the bridge without the old lease's remaining time; the client sets it at its first renewal.
        A failure restores the client on the port with everything else.
      - NetworkManager and systemd-networkd run their DHCP clients themselves; give the bridge a profile of theirs
        (the P(kvmhost.bridging.host_bridge#role) role does).
      - An address with a lifetime whose client cannot be moved (none found, or one this module does not know) still
        moves, with its remaining lifetime; the task warns that nothing renews it, and lists it in
        RV(expiring_addresses).
      - A route with attributes this module cannot copy (an encapsulation, a nexthop object, an expiry) makes the task
        fail with nothing changed.
    type: bool
    default: true
  up:
    description:
      - Bring the bridge (and the listed ports) up. V(false) brings the bridge down, or creates it down.
    type: bool
    default: true
  force:
    description:
      - Allow removing or bringing down the bridge that carries the address of the Ansible connection, detaching its
        ports that are not guests' taps, and making the NIC that carries that address a port without moving the
        address. The connection is then likely cut.
    type: bool
    default: false
notes:
  - The runtime state is what the kernel has now; it is lost on reboot unless it is also written to the network
    configuration (for example with M(kvmhost.bridging.ifcfg)).
  - Testing aid, not for production use. When the environment variable C(KVMB_TEST_FAIL_AFTER_STEP) is set to a
    step number (Ansible passes it with the C(environment) keyword), the module fails on purpose right after that
    step, so tests can prove the restore on a real kernel. Any value that is not a positive integer fails the task.
seealso:
  - module: kvmhost.bridging.ifcfg
  - module: kvmhost.bridging.tap
"""

EXAMPLES = r"""
- name: Bridge eth0 for the guests, moving the host's address and default route to the bridge
  kvmhost.bridging.bridge:
    name: breth0
    ports: [eth0]
    stp: false
    forward_delay: 0

- name: An isolated network for the guests, with their taps only
  kvmhost.bridging.bridge:
    name: brisolated
    ports: [vnet0, vnet1]
    ports_exclusive: true
    mac: keep

- name: Remove a bridge
  kvmhost.bridging.bridge:
    name: brold
    state: absent
"""

RETURN = r"""
actions:
  description: The steps done, or in check mode the steps that would be done, in order.
  returned: always
  type: list
  elements: str
  sample:
    - create bridge breth0 (mac 52:54:00:12:34:56, forward_delay 0s)
    - bring breth0 up
    - add 198.18.0.2/30 to breth0 (from eth0)
    - attach eth0 to breth0
    - move route 'default via 198.18.0.1 dev eth0 proto boot' to breth0
    - remove 198.18.0.2/30 from eth0
bridge:
  description:
    - The bridge after the task (predicted in check mode). Only RV(bridge.name) and RV(bridge.state) when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the bridge.
      type: str
      sample: breth0
    state:
      description: V(present) or V(absent).
      type: str
      sample: present
    mac:
      description: MAC address of the bridge.
      type: str
      sample: "52:54:00:12:34:56"
    mtu:
      description: MTU of the bridge.
      type: int
      sample: 1500
    up:
      description: Whether the bridge is administratively up.
      type: bool
      sample: true
    stp:
      description: Whether STP runs.
      type: bool
      sample: false
    forward_delay:
      description: Forwarding delay in seconds.
      type: float
      sample: 0
    hello_time:
      description: STP hello time in seconds.
      type: float
      sample: 2
    max_age:
      description: STP maximum message age in seconds.
      type: float
      sample: 20
    ageing_time:
      description: MAC ageing time in seconds.
      type: float
      sample: 300
    priority:
      description: Bridge priority.
      type: int
      sample: 32768
    vlan_filtering:
      description: Whether VLAN filtering is on.
      type: bool
      sample: false
    ports:
      description: Names of the ports.
      type: list
      elements: str
      sample: [eth0, vnet0]
    addresses:
      description: Addresses on the bridge (without IPv6 link-local), as address/prefix.
      type: list
      elements: str
      sample: [198.18.0.2/30]
    routes:
      description: Routes through the bridge that are not the kernel's own, in C(ip route) style.
      type: list
      elements: str
      sample: ["default via 198.18.0.1 dev breth0 proto boot"]
dhcp_clients:
  description: The DHCP clients bound to the bridge after the task (predicted in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The client program.
      type: str
      sample: dhclient
    interface:
      description: The interface it serves.
      type: str
      sample: breth0
    family:
      description: V(ipv4) or V(ipv6).
      type: str
      sample: ipv4
    argv:
      description: Its command line.
      type: list
      elements: str
      sample: [dhclient, "-1", "-q", "-lf", /var/lib/dhclient/dhclient--breth0.lease, "-pf", /var/run/dhclient-breth0.pid, breth0]
expiring_addresses:
  description:
    - Addresses on the bridge after the task (predicted in check mode) with a finite lifetime, such as a DHCP lease
      that moved from a port, that no DHCP client on the bridge (RV(dhcp_clients)) renews. Each of them expires.
    - Lifetimes are in seconds.
  returned: always
  type: list
  elements: dict
  sample: [{"address": "198.19.0.114/24", "valid_lft": 3600, "preferred_lft": 3600}]
restored:
  description: On a failed step, whether the previous runtime state was restored exactly.
  returned: failure of a step
  type: bool
  sample: true
failed_step:
  description: On a failed step, its number (1-based) in RV(actions) order.
  returned: failure of a step
  type: int
  sample: 4
differences:
  description: On a failed step, what still differs from the state before the task (empty when restored).
  returned: failure of a step
  type: list
  elements: str
  sample: []
restore_errors:
  description: On a failed step, the undo steps that failed.
  returned: failure of a step
  type: list
  elements: str
  sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_runtime import manage_bridge
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._ssh_connection import connection_addresses


def run(module):
    return manage_bridge(module.params, check_mode=module.check_mode, connection=connection_addresses(), module=module, environ=os.environ)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "ports": {"type": "list", "elements": "str", "default": []},
            "ports_exclusive": {"type": "bool", "default": False},
            "stp": {"type": "bool"},
            "forward_delay": {"type": "float"},
            "hello_time": {"type": "float"},
            "max_age": {"type": "float"},
            "ageing_time": {"type": "float"},
            "priority": {"type": "int"},
            "vlan_filtering": {"type": "bool"},
            "mtu": {"type": "int"},
            "mac": {"type": "str", "default": "inherit"},
            "migrate_addresses": {"type": "bool", "default": True},
            "up": {"type": "bool", "default": True},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

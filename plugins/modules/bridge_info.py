#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bridge_info
short_description: What the bridges, taps and guests of a KVM host are
version_added: 0.1.0
description:
  - Answers what C(virbr0), C(breth0) and C(vnet0) are on a KVM or libvirt host. Read-only.
  - For every Linux bridge returns its MAC, MTU, state, STP settings, addresses and ports; for every port its kind,
    STP state, carrier and MAC; for a tap, the process that holds it and the guest name from QEMU's C(-name).
  - Also returns the taps on no bridge, the forwarding sysctls, and a report text like C(brctl show) for people.
  - Where libvirt is reachable (O(libvirt_uri)), names the libvirt domain behind each tap (C(vnet0) is web01's NIC) and
    returns every domain's interfaces with whether their bridges exist. Where it is not (no libvirt-python, no
    daemon), the module still succeeds, with null domain fields, and RV(libvirt) says why.
  - Reads one link dump and one address dump over netlink and scans C(/proc) once for the processes that hold taps;
    the cost grows linearly with the number of ports.
  - Needs no pyroute2 on the managed host; it reads netlink with the Python standard library.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options:
  libvirt:
    description:
      - V(auto) asks libvirt at O(libvirt_uri) which domain is behind each tap, where libvirt is reachable.
      - V(never) does not ask; the domain fields are null and RV(libvirt.status) is V(off).
    type: str
    choices: [auto, never]
    default: auto
  libvirt_uri:
    description:
      - The libvirt connection URI, for example V(qemu:///system), or V(test:///default) for tests. The connection is
        read-only.
    type: str
    default: qemu:///system
notes:
  - Run it with O(ignore:become=true) to see the processes of other users that hold taps.
  - The libvirt lookup uses libvirt-python (python3-libvirt) when the host's Python has it; it is optional.
  - Works in the network namespace the module runs in; a tap counts as held by a process when the tap is in this
    namespace, wherever the process runs.
seealso:
  - module: kvmhost.bridging.tap
"""

EXAMPLES = r"""
- name: What are virbr0 and vnet0?
  kvmhost.bridging.bridge_info:
  register: bridges

- name: Show it like brctl show
  ansible.builtin.debug:
    msg: "{{ bridges.report.splitlines() }}"

- name: Which domain is behind vnet0?
  ansible.builtin.debug:
    msg: "{{ bridges.bridges | map(attribute='ports') | flatten | selectattr('name', 'eq', 'vnet0') | map(attribute='domain') | first }}"

- name: Only the links, without asking libvirt
  kvmhost.bridging.bridge_info:
    libvirt: never

- name: Guests on breth0
  ansible.builtin.debug:
    msg: "{{ (bridges.bridges | selectattr('name', 'eq', 'breth0') | first).ports | selectattr('guest') | map(attribute='guest') | list }}"
"""

RETURN = r"""
bridges:
  description: Every Linux bridge, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the bridge.
      type: str
      sample: breth0
    ifindex:
      description: Interface index.
      type: int
    mac:
      description: MAC address of the bridge.
      type: str
      sample: "52:54:00:12:34:56"
    mtu:
      description: MTU of the bridge.
      type: int
      sample: 1500
    operstate:
      description: Operational state, in lower case (V(up), V(down), V(unknown), ...).
      type: str
    bridge_id:
      description: Bridge id as C(brctl show) prints it, priority and address.
      type: str
      sample: 8000.525400123456
    stp:
      description: Whether STP is on.
      type: bool
    stp_mode:
      description: V(off), V(kernel) or V(user) (an STP daemon).
      type: str
    forward_delay:
      description: Forward delay in seconds.
      type: float
      sample: 15.0
    addresses:
      description: Addresses on the bridge, each with C(family) (V(ipv4) or V(ipv6)), C(address), C(prefixlen) and C(cidr).
      type: list
      elements: dict
    uplinks:
      description: Ports that lead outside the host (physical NICs, bonds, VLANs); empty for an isolated or NAT network.
      type: list
      elements: str
    libvirt_network:
      description:
        - The libvirt network whose bridge this is (see RV(libvirt.networks)), or null when none is or libvirt said nothing.
        - The report names it, its forward mode and subnets on the line after the bridge's.
      type: dict
    ports:
      description: Ports of the bridge, in natural order (vnet2 before vnet10).
      type: list
      elements: dict
      contains:
        name:
          description: Name of the port.
          type: str
        ifindex:
          description: Interface index.
          type: int
        kind:
          description: V(physical), V(tap), V(veth), V(vlan), V(bond), V(bridge), or another kernel link kind.
          type: str
        stp_state:
          description: V(disabled), V(listening), V(learning), V(forwarding) or V(blocking).
          type: str
        carrier:
          description: Whether the port has carrier (a tap has it while a process holds it).
          type: bool
        operstate:
          description: Operational state, in lower case.
          type: str
        mac:
          description: MAC address.
          type: str
        mtu:
          description: MTU.
          type: int
        process:
          description:
            - Taps only. The process holding the tap (the lowest pid), with C(pid), C(cmdline) and C(guest), or null.
            - C(guest) is the name from QEMU's C(-name guest=NAME) or C(-name NAME), or null.
          type: dict
        processes:
          description: Taps only. Every process holding the tap.
          type: list
          elements: dict
        guest:
          description: Taps only. The guest name, or null.
          type: str
        owner:
          description: Taps only. Owner uid, or null.
          type: int
        group:
          description: Taps only. Group gid, or null.
          type: int
        persistent:
          description: Taps only. Whether the tap stays when no process holds it.
          type: bool
        multi_queue:
          description: Taps only. Whether the tap is multi-queue.
          type: bool
        vnet_hdr:
          description: Taps only. Whether frames carry a virtio-net header.
          type: bool
        domain:
          description:
            - Taps only. The running libvirt domain whose interface has this tap as its target, or null (libvirt not
              reachable, or no domain has it).
          type: str
          sample: web01
        domain_mac:
          description: Taps only. The MAC address of the domain's interface (what the guest sees), or null.
          type: str
          sample: "52:54:00:12:34:56"
        domain_model:
          description: Taps only. The NIC model of the domain's interface, or null.
          type: str
          sample: virtio
unbridged_taps:
  description:
    - Taps that are on no bridge, with the same fields as a tap port (without C(stp_state)).
    - C(master) names a master that is not a Linux bridge (an Open vSwitch, a bond), or is null.
  returned: always
  type: list
  elements: dict
forwarding:
  description:
    - The forwarding sysctls of the namespace, as integers.
    - C(bridge_nf_call_*) are null when the br_netfilter module is not loaded; C(ipv6_forwarding) is null without IPv6.
  returned: always
  type: dict
  contains:
    ip_forward:
      description: net.ipv4.ip_forward
      type: int
    ipv6_forwarding:
      description: net.ipv6.conf.all.forwarding
      type: int
    bridge_nf_call_iptables:
      description: net.bridge.bridge-nf-call-iptables
      type: int
    bridge_nf_call_ip6tables:
      description: net.bridge.bridge-nf-call-ip6tables
      type: int
    bridge_nf_call_arptables:
      description: net.bridge.bridge-nf-call-arptables
      type: int
  sample:
    ip_forward: 1
    ipv6_forwarding: 0
    bridge_nf_call_iptables: null
    bridge_nf_call_ip6tables: null
    bridge_nf_call_arptables: null
libvirt:
  description:
    - What libvirt said, or why it said nothing. The module does not fail when libvirt is not reachable.
  returned: always
  type: dict
  contains:
    uri:
      description: The URI asked, or null with O(libvirt=never).
      type: str
      sample: qemu:///system
    status:
      description:
        - V(ok); V(off) with O(libvirt=never); V(missing) when the host's Python has no libvirt-python; V(unreachable)
          when the connection failed (no daemon, no permission); V(error) when reading the domains failed.
      type: str
      sample: ok
    msg:
      description: Why, in a few words, or with V(ok) how many domains there are.
      type: str
      sample: 3 domains, 2 running
    domains:
      description:
        - Every domain, sorted by name, with C(domain) (name), C(uuid), C(active), C(persistent) and C(interfaces).
        - Each interface has C(view) (V(live) for the running domain, V(config) for the persistent definition), C(type),
          C(mac), C(bridge), C(network), C(model), C(target) (the tap) and C(bridge_state), which is V(bridge),
          V(not_a_bridge) or V(missing) on this host for an interface of type bridge with a local URI, else null.
      type: list
      elements: dict
      sample:
        - domain: web01
          uuid: 3deda32b-04b6-47d0-b36a-b09037689f42
          active: true
          persistent: true
          interfaces:
            - {view: live, type: bridge, mac: "52:54:00:12:34:56", bridge: breth0, network: null, model: virtio,
               target: vnet0, bridge_state: bridge}
    networks:
      description:
        - Every libvirt network, sorted by name, with C(network) (name), C(bridge), C(forward) (libvirt's forward mode
          V(nat), V(route), V(open), V(bridge), ..., or V(isolated) when the network has no C(<forward>)), C(subnets)
          (CIDR), C(active) and C(autostart). Empty where libvirt said nothing or the driver has no networks.
      type: list
      elements: dict
      sample:
        - {network: natnet, bridge: virbr2, forward: nat, subnets: [198.18.122.0/24], active: true, autostart: true}
report:
  description: A text like C(brctl show), then one line per bridge and per port saying what it is.
  returned: always
  type: str
  sample: |
    bridge name  bridge id          STP enabled  interfaces
    breth0       8000.525400123456  no           eth0
                                                 vnet0
    ...
      vnet0: tap of guest web01, pid 4242 (qemu-kvm), libvirt domain web01 (52:54:00:12:34:56, virtio), forwarding, ...
    ...
    libvirt qemu:///system: 3 domains, 2 running
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_info import add_domains, gather
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import fail_on_error
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_iface import read_domains


def main():
    module = AnsibleModule(
        argument_spec={
            "libvirt": {"type": "str", "choices": ["auto", "never"], "default": "auto"},
            "libvirt_uri": {"type": "str", "default": "qemu:///system"},
        },
        supports_check_mode=True,
    )
    info = fail_on_error(module, gather)
    uri = module.params["libvirt_uri"] if module.params["libvirt"] == "auto" else None
    module.exit_json(changed=False, **add_domains(info, read_domains(uri)))


if __name__ == "__main__":
    main()

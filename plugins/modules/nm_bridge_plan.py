#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nm_bridge_plan
short_description: Plan bridging a NIC through NetworkManager (the bridge profile and the NIC's profile as its port)
version_added: 0.2.0
description:
  - Asks NetworkManager (C(nmcli)) for the NIC, its profile and the bridge's, and returns what bridging the NIC needs,
    as the arguments of two M(kvmhost.bridging.nm_keyfile) calls (the bridge's profile first, then the NIC's own
    profile turned into the bridge's port, not a second profile for the NIC).
  - The bridge gets the NIC's MAC as C(cloned-mac-address), so a DHCP server hands it the NIC's lease, and the IP
    configuration of the NIC's profile (DHCP stays DHCP, static stays static) unless O(bootproto) says otherwise.
    On a later run, when the NIC is already the bridge's port, the bridge's profile is the source.
  - Returns RV(runtime_ok) when NetworkManager already runs both profiles on the devices. Changes nothing.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options:
  nic:
    description: The NIC to bridge.
    type: str
    required: true
  bridge:
    description: The bridge's interface name.
    type: str
    required: true
  bootproto:
    description:
      - V(inherit) takes the IP configuration from the NIC's profile; V(dhcp), V(static) (with O(addresses)) and
        V(none) set it.
    type: str
    choices: [inherit, dhcp, static, none]
    default: inherit
  addresses:
    description: With O(bootproto=static), the bridge's IPv4 addresses with prefix length.
    type: list
    elements: str
    default: []
  gateway:
    description: With O(bootproto=static), the default gateway.
    type: str
    default: ""
  dns:
    description: DNS servers; empty keeps those of the source profile.
    type: list
    elements: str
    default: []
  stp:
    description: Spanning tree on the bridge.
    type: bool
    default: false
  forward_delay:
    description: The bridge's forward delay in seconds.
    type: int
    default: 0
requirements:
  - NetworkManager running on the managed host, with C(nmcli)
seealso:
  - module: kvmhost.bridging.nm_keyfile
  - module: kvmhost.bridging.nm_checkpoint
"""

EXAMPLES = r"""
- name: Plan bridging eth0 into breth0 through NetworkManager
  kvmhost.bridging.nm_bridge_plan:
    nic: eth0
    bridge: breth0
  register: plan

- name: Write the two profiles
  kvmhost.bridging.nm_keyfile:
    name: "{{ item.name }}"
    type: "{{ item.type }}"
    interface: "{{ item.interface }}"
    controller: "{{ item.controller | default(omit) }}"
    cloned_mac_address: "{{ item.cloned_mac_address | default(omit) }}"
    ipv4: "{{ item.ipv4 | default(omit) }}"
  loop: "{{ plan.keyfiles }}"
"""

RETURN = r"""
keyfiles:
  description: The arguments of M(kvmhost.bridging.nm_keyfile) for the bridge's profile and then the port's.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: breth0, type: bridge, interface: breth0, cloned_mac_address: "52:54:00:12:34:56", autoconnect: true,
       stp: false, forward_delay: 0, ipv4: {method: auto, addresses: [], gateway: "", dns: []},
       ipv6: {method: disabled, addresses: [], gateway: "", dns: []}, settings: {}}
    - {name: System eth0, type: ethernet, interface: eth0, controller: breth0, autoconnect: true}
port_profile:
  description: The name of the NIC's profile, which becomes the port.
  returned: always
  type: str
  sample: System eth0
port_uuid:
  description: Its uuid (activate this one).
  returned: always
  type: str
  sample: 5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03
bridge_profile:
  description: The name of the bridge's profile.
  returned: always
  type: str
  sample: breth0
mac:
  description: The NIC's MAC, which the bridge clones.
  returned: always
  type: str
  sample: "52:54:00:12:34:56"
runtime_ok:
  description: Whether NetworkManager already runs the port profile on the NIC and the bridge profile on the bridge.
  returned: always
  type: bool
  sample: false
ipv4_method:
  description: The bridge's IPv4 method.
  returned: always
  type: str
  sample: auto
what:
  description: The change in words.
  returned: always
  type: str
  sample: bridging eth0 into breth0
source:
  description: Where the bridge's IP configuration comes from.
  returned: always
  type: str
  sample: eth0's profile System eth0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError, run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm_bridge import plan, read_state


def run(module):
    params = module.params
    nmcli = module.get_bin_path("nmcli")
    if not nmcli:
        raise ModuleError("nmcli is not installed on this host; the NetworkManager backend needs it (package NetworkManager).")
    state = read_state(lambda argv: module.run_command(argv, environ_update={"LC_ALL": "C"}), params["nic"], params["bridge"], nmcli)
    result = plan(
        state,
        params["nic"],
        params["bridge"],
        params["bootproto"],
        params["addresses"],
        params["gateway"],
        params["dns"],
        params["stp"],
        params["forward_delay"],
    )
    result["changed"] = False
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "nic": {"type": "str", "required": True},
            "bridge": {"type": "str", "required": True},
            "bootproto": {"type": "str", "choices": ["inherit", "dhcp", "static", "none"], "default": "inherit"},
            "addresses": {"type": "list", "elements": "str", "default": []},
            "gateway": {"type": "str", "default": ""},
            "dns": {"type": "list", "elements": "str", "default": []},
            "stp": {"type": "bool", "default": False},
            "forward_delay": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nm_keyfile_info
short_description: Read NetworkManager keyfile profiles, as NetworkManager reads them
version_added: 0.2.0
description:
  - Reads the keyfiles in O(config_dir) with the reader of M(kvmhost.bridging.nm_keyfile) (GLib's key file rules and
    NetworkManager's reading of the keys) and returns the profiles, which profile applies to which interface, which
    profiles are ports of which bridge, and the problems that make NetworkManager ignore a file or read it otherwise
    than it looks. Read-only; NetworkManager need not run.
  - Files that NetworkManager skips by their name (hidden files, C(*~) backups, temporary files, certificates) are not
    returned.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options:
  interfaces:
    description:
      - Return only the profiles that apply to these interfaces (C(interface-name=)) or are ports of them.
      - With neither O(interfaces) nor O(ids), every profile is returned.
    type: list
    elements: str
  ids:
    description:
      - Return (also) the profiles with these names (C(connection.id)).
    type: list
    elements: str
  config_dir:
    description:
      - The profile directory. A missing directory gives no profiles.
    type: path
    default: /etc/NetworkManager/system-connections
seealso:
  - module: kvmhost.bridging.nm_keyfile
  - module: kvmhost.bridging.ifcfg_info
"""

EXAMPLES = r"""
- name: Read the profiles of eth0 and breth0
  kvmhost.bridging.nm_keyfile_info:
    interfaces: [eth0, breth0]
  register: nm

- name: Show which profiles want eth0
  ansible.builtin.debug:
    msg: "eth0: {{ nm.interfaces.eth0 | join(', ') }}; ports of breth0: {{ nm.ports.breth0 | default([]) | join(', ') }}"
"""

RETURN = r"""
profiles:
  description: The selected profiles, in file name order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    loaded:
      description: Whether NetworkManager loads the file (it parses, and it is root's and mode 0600).
      type: bool
    id:
      description: C(connection.id); the file name without C(.nmconnection) when the file has none, as NetworkManager does.
      type: str
    uuid:
      description: C(connection.uuid); null when the file has none (NetworkManager then makes one up).
      type: str
    type:
      description: The profile's type (V(ethernet), V(bridge), ...); the type of its settings when C(type=) is missing.
      type: str
    interface_name:
      description: C(connection.interface-name) (also the old C([bridge] interface-name)).
      type: str
    controller:
      description: The bridge (or bond) this profile is a port of, from C(master=) or C(controller=); null if none.
      type: str
    port_type:
      description: C(slave-type)/C(port-type), or what NetworkManager infers from a C([bridge-port]) section.
      type: str
    controller_keys:
      description: Which port keys the file has (V(master), V(controller)). NetworkManager before 1.46 reads only
        V(master).
      type: list
      elements: str
    mac_address:
      description: C([ethernet] mac-address), upper case.
      type: str
    cloned_mac_address:
      description: C([ethernet] cloned-mac-address).
      type: str
    autoconnect:
      description: C(connection.autoconnect) (default true).
      type: bool
    ipv4:
      description: C({method, addresses, gateway, dns}); empty for a port.
      type: dict
    ipv6:
      description: C({method, addresses, gateway, dns}); empty for a port.
      type: dict
    bridge:
      description: C({stp, forward_delay}) for a bridge, with NetworkManager's defaults.
      type: dict
    settings:
      description: Every section as a dict of keys and values, as GLib reads them; null for a value GLib cannot read.
      type: dict
    problems:
      description: Why NetworkManager ignores the file or reads it otherwise than it looks, with what to do.
      type: list
      elements: str
  sample:
    - path: /etc/NetworkManager/system-connections/eth0.nmconnection
      loaded: true
      id: System eth0
      type: ethernet
      interface_name: eth0
      controller: breth0
      port_type: bridge
      controller_keys: [master, controller]
      problems: []
interfaces:
  description: For every interface (those of O(interfaces) when given), the ids of the loaded profiles that apply to it.
  returned: always
  type: dict
  sample: {eth0: [System eth0], breth0: [breth0]}
ports:
  description: For every bridge, the ids of the loaded profiles that are its ports.
  returned: always
  type: dict
  sample: {breth0: [System eth0]}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._keyfile_io import read_info


def run(module):
    params = module.params
    return dict(read_info(params["config_dir"], params["interfaces"], params["ids"]), changed=False)


def main():
    module = AnsibleModule(
        argument_spec={
            "interfaces": {"type": "list", "elements": "str"},
            "ids": {"type": "list", "elements": "str"},
            "config_dir": {"type": "path", "default": "/etc/NetworkManager/system-connections"},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

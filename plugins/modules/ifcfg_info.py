#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ifcfg_info
short_description: Read ifcfg files of bridges and NICs, as NetworkManager reads them
version_added: 0.1.0
description:
  - Reads C(ifcfg-<device>) in O(config_dir) for every device in O(devices), in one task, and returns each file's
    variables with NetworkManager's reading rules (the same reader as M(kvmhost.bridging.ifcfg)). Read-only.
  - A badly quoted value, which neither NetworkManager nor bash would read as written, comes back as null.
  - A missing file is not an error; it comes back with RV(ifcfg.exists=false) and no variables.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options:
  devices:
    description:
      - The interface names whose files to read. Each must be a valid interface name, as for
        M(kvmhost.bridging.ifcfg)'s O(kvmhost.bridging.ifcfg#module:device); all are checked before any file is read.
    type: list
    elements: str
    required: true
  config_dir:
    description:
      - Directory of the ifcfg files.
    type: path
    default: /etc/sysconfig/network-scripts
seealso:
  - module: kvmhost.bridging.ifcfg
"""

EXAMPLES = r"""
- name: Read the files of the NIC and of the bridge it may already be a port of
  kvmhost.bridging.ifcfg_info:
    devices: [eth0, breth0]
  register: files

- name: Show how eth0 boots
  ansible.builtin.debug:
    msg: "eth0 boots with {{ files.ifcfg.eth0.variables.BOOTPROTO | default('no BOOTPROTO') }}"
  when: files.ifcfg.eth0.exists
"""

RETURN = r"""
ifcfg:
  description: One entry per device in O(devices), keyed by the device name.
  returned: always
  type: dict
  contains:
    path:
      description: The file's path.
      type: str
      sample: /etc/sysconfig/network-scripts/ifcfg-eth0
    exists:
      description: Whether the file exists.
      type: bool
      sample: true
    variables:
      description: The file's keys and values as NetworkManager reads them; null for a badly quoted value; empty for
        a missing file.
      type: dict
      sample: {DEVICE: eth0, BOOTPROTO: dhcp, ONBOOT: "yes"}
  sample:
    eth0:
      path: /etc/sysconfig/network-scripts/ifcfg-eth0
      exists: true
      variables: {DEVICE: eth0, BOOTPROTO: dhcp, ONBOOT: "yes"}
    breth0:
      path: /etc/sysconfig/network-scripts/ifcfg-breth0
      exists: false
      variables: {}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import read_bytes
from ansible_collections.kvmhost.bridging.plugins.module_utils._ifcfg_codec import read_files


def run(module):
    return {"changed": False, "ifcfg": read_files(module.params["config_dir"], module.params["devices"], read_bytes)}


def main():
    module = AnsibleModule(
        argument_spec={
            "devices": {"type": "list", "elements": "str", "required": True},
            "config_dir": {"type": "path", "default": "/etc/sysconfig/network-scripts"},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

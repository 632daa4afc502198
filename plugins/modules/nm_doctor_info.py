#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nm_doctor_info
short_description: Find what keeps a NetworkManager host's bridges from coming up at boot, or the host from RHEL 10
version_added: 0.2.0
description:
  - Asks the system bus whether NetworkManager runs, lists the ifcfg files in O(config_dir) and reads the keyfiles in
    O(keyfile_dir) as M(kvmhost.bridging.nm_keyfile_info) does, and returns the problems with a fix for each, in the
    shape of the doctor role's report.
  - V(nm_ifcfg) - ifcfg files on a host that NetworkManager runs; leapp's networkdeprecations actor refuses the
    upgrade to RHEL 10 while any exists.
  - V(nm_boot) - a bridge or port profile that will not come up at boot (ignored because of its owner or mode,
    autoconnect off, a port whose bridge has no profile, a port that only NetworkManager 1.46 and later reads).
  - Read-only.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options:
  config_dir:
    description: The network-scripts directory.
    type: path
    default: /etc/sysconfig/network-scripts
  keyfile_dir:
    description: NetworkManager's keyfile directory.
    type: path
    default: /etc/NetworkManager/system-connections
  skip:
    description: Checks not to run (V(nm_ifcfg), V(nm_boot)).
    type: list
    elements: str
    default: []
seealso:
  - module: kvmhost.bridging.network_backend_info
  - module: kvmhost.bridging.nm_keyfile_info
"""

EXAMPLES = r"""
- name: Check the NetworkManager profiles
  kvmhost.bridging.nm_doctor_info:
  register: nm_health

- name: Show the problems
  ansible.builtin.debug:
    var: nm_health.problems
"""

RETURN = r"""
nm_running:
  description: Whether NetworkManager answers on the system bus.
  returned: always
  type: bool
  sample: true
ifcfg_files:
  description: The ifcfg profile files in O(config_dir).
  returned: always
  type: list
  elements: str
  sample: [ifcfg-eth0]
isolated_bridges:
  description: Bridges that a loaded keyfile makes and that no port profile joins (private networks for VMs).
  returned: always
  type: list
  elements: str
  sample: [isolbr0]
problems:
  description: The problems, each with C(check), C(subject), C(problem) and C(fix).
  returned: always
  type: list
  elements: dict
  sample:
    - check: nm_ifcfg
      subject: /etc/sysconfig/network-scripts
      problem: NetworkManager runs this host, and 1 ifcfg file(s) are left in /etc/sysconfig/network-scripts (ifcfg-eth0).
      fix: Turn them into keyfiles in /etc/NetworkManager/system-connections.
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._keyfile_io import read_info
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm import Bus
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm_doctor import CHECKS, findings, ifcfg_profiles, isolated_bridges


def run(module):
    params = module.params
    unknown = sorted(set(params["skip"]) - set(CHECKS))
    if unknown:
        module.fail_json(msg="skip names unknown checks: %s; the checks are %s." % (", ".join(unknown), ", ".join(CHECKS)))
    busctl = module.get_bin_path("busctl")
    running = bool(busctl) and Bus(module.run_command, busctl).name_has_owner()
    files = ifcfg_profiles(params["config_dir"])
    profiles = read_info(params["keyfile_dir"])["profiles"] if os.path.isdir(params["keyfile_dir"]) else []
    return {
        "changed": False,
        "nm_running": running,
        "ifcfg_files": files,
        "isolated_bridges": isolated_bridges(profiles),
        "problems": findings(running, params["config_dir"], files, profiles, params["skip"]),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "config_dir": {"type": "path", "default": "/etc/sysconfig/network-scripts"},
            "keyfile_dir": {"type": "path", "default": "/etc/NetworkManager/system-connections"},
            "skip": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

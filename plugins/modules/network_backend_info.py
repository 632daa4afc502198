#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: network_backend_info
short_description: Say what brings a host's network up, and how bridges must be written there
version_added: 0.2.0
description:
  - Looks at what brings the host's network up and returns the backend the collection uses there, the profile format,
    and why.
  - With O(backend=auto), NetworkManager running (it answers on the system bus) means V(networkmanager); otherwise
    V(initscripts), the network service with network-scripts (EL7, EL8 with network-scripts), where ifcfg files carry
    C(NM_CONTROLLED=no).
  - On NetworkManager the profiles are keyfiles by default. O(profile_format=ifcfg) is allowed where NetworkManager
    has its ifcfg-rh plugin (EL8, EL9); those files are written without C(NM_CONTROLLED=no).
  - A choice the host cannot carry (NetworkManager forced where it does not run, ifcfg where NetworkManager does not
    read it, keyfiles without NetworkManager) fails with what to do.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options:
  backend:
    description: V(auto) decides from the host; V(networkmanager) or V(initscripts) force the backend.
    type: str
    choices: [auto, networkmanager, initscripts]
    default: auto
  profile_format:
    description: V(auto) is V(keyfile) on NetworkManager and V(ifcfg) on initscripts; V(keyfile) or V(ifcfg) force it.
    type: str
    choices: [auto, keyfile, ifcfg]
    default: auto
requirements:
  - C(busctl) (systemd) to ask the system bus whether NetworkManager runs; without it NetworkManager counts as not
    running.
seealso:
  - module: kvmhost.bridging.nm_checkpoint
"""

EXAMPLES = r"""
- name: Find out how this host's network is brought up
  kvmhost.bridging.network_backend_info:
  register: net

- name: Say what was chosen and why
  ansible.builtin.debug:
    msg: "{{ net.backend }} with {{ net.profile_format }} profiles: {{ net.reason }}"
"""

RETURN = r"""
backend:
  description: V(networkmanager) or V(initscripts).
  returned: always
  type: str
  sample: networkmanager
profile_format:
  description: V(keyfile) or V(ifcfg).
  returned: always
  type: str
  sample: keyfile
nm_controlled:
  description: Whether profiles are left to NetworkManager (false means ifcfg files with C(NM_CONTROLLED=no)).
  returned: always
  type: bool
  sample: true
reason:
  description: Why, in words, for the play output.
  returned: always
  type: str
  sample: NetworkManager 1.42.4 is running (it answers on the system bus), so it brings the network up; profiles are
    NetworkManager keyfiles (the default on NetworkManager)
probe:
  description: What was found on the host.
  returned: always
  type: dict
  sample: {nm_running: true, nm_version: 1.42.4, nm_ifcfg_plugin: false, network_scripts: false}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm import Bus, choose_backend, probe_host


def _no_busctl(argv):
    return 1, "", "busctl is not installed"


def run(module):
    busctl = module.get_bin_path("busctl")
    bus = Bus(module.run_command if busctl else _no_busctl, busctl or "busctl")
    probe = probe_host(bus)
    result = choose_backend(probe, module.params["backend"], module.params["profile_format"])
    result.update(changed=False, probe=probe)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "backend": {"type": "str", "choices": ["auto", "networkmanager", "initscripts"], "default": "auto"},
            "profile_format": {"type": "str", "choices": ["auto", "keyfile", "ifcfg"], "default": "auto"},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

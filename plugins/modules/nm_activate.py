#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nm_activate
short_description: Activate a NetworkManager profile on its interface unless it is already active there
version_added: 0.2.0
description:
  - Activates the profile named O(profile) on O(interface) through NetworkManager (C(nmcli connection up)), and
    does nothing when NetworkManager already runs that profile on that interface (state activated).
  - For changes that may cut the managed host's connection, run this under M(kvmhost.bridging.nm_checkpoint).
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
options:
  profile:
    description: The profile's name (C(connection.id)); exactly one profile must have it.
    type: str
    required: true
  interface:
    description: The interface the profile runs on.
    type: str
    required: true
  wait:
    description: Seconds to wait for the activation.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    platforms: posix
requirements:
  - NetworkManager running on the managed host, with C(nmcli)
seealso:
  - module: kvmhost.bridging.nm_keyfile
  - module: kvmhost.bridging.nm_checkpoint
"""

EXAMPLES = r"""
- name: Bring the isolated bridge up from its profile
  kvmhost.bridging.nm_activate:
    profile: isolbr0
    interface: isolbr0
"""

RETURN = r"""
uuid:
  description: The profile's uuid.
  returned: success
  type: str
  sample: 0e0c3ad7-6d4f-4f0e-9a3e-0f5c2f7d7a11
msg:
  description: What was done.
  returned: always
  type: str
  sample: activated isolbr0 on isolbr0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError, run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm_bridge import activate


def run(module):
    nmcli = module.get_bin_path("nmcli")
    if not nmcli:
        raise ModuleError("nmcli is not installed on this host; nm_activate needs NetworkManager's client.")
    params = module.params
    return activate(
        lambda argv: module.run_command(argv, environ_update={"LC_ALL": "C"}), params["profile"], params["interface"], params["wait"], module.check_mode, nmcli
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "profile": {"type": "str", "required": True},
            "interface": {"type": "str", "required": True},
            "wait": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

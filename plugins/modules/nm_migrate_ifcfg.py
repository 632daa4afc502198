#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nm_migrate_ifcfg
short_description: Turn a host's ifcfg profiles into NetworkManager keyfiles and move the ifcfg files out of network-scripts
version_added: 0.2.0
description:
  - Converts every ifcfg profile in O(config_dir) (bridges, bridge ports and plain ethernet NICs; not C(ifcfg-lo) nor
    backup files) into the equivalent NetworkManager keyfile in O(keyfile_dir), read with the collection's own
    reader of NetworkManager's ifcfg rules. It does not need NetworkManager's ifcfg-rh plugin, which
    C(nmcli connection migrate) needs and RHEL 10 no longer has.
  - Each keyfile keeps the profile's name and uuid, and is written atomically as C(root:root 0600) under a lock.
  - Each ifcfg file then moves to a new directory under O(backup_dir) (named by the UTC time), outside network-scripts,
    with a C(manifest.json); afterwards no ifcfg file is left that would block the leapp upgrade to RHEL 10.
  - When any profile cannot be converted (another C(TYPE), a C(BOOTPROTO) other than none, static or dhcp, settings
    with no keyfile equivalent, C(route-)/C(rule-) files, a keyfile that already configures the device), the module
    fails naming every such file and changes nothing.
  - With O(state=restored) and the stamped O(backup_dir) a migration returned, it puts the ifcfg files back and removes
    the keyfiles it wrote (unless they were changed since).
  - Writing does not hand the devices to NetworkManager. The role M(kvmhost.bridging.nm_migrate) does that under a
    NetworkManager checkpoint.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
options:
  state:
    description:
      - V(migrated) converts and moves the ifcfg files; V(restored) undoes the migration recorded in O(backup_dir).
    type: str
    default: migrated
    choices: [migrated, restored]
  config_dir:
    description: The network-scripts directory.
    type: path
    default: /etc/sysconfig/network-scripts
  keyfile_dir:
    description: NetworkManager's profile directory; it must be root's and not writable by others.
    type: path
    default: /etc/NetworkManager/system-connections
  backup_dir:
    description:
      - With O(state=migrated), where the ifcfg files go, in a new subdirectory per run; it must be outside O(config_dir).
      - With O(state=restored), the subdirectory that the migration returned as RV(backup_dir).
    type: path
    default: /var/lib/kvmhost-bridging/ifcfg-backup
  stamp:
    description: The subdirectory's name instead of the UTC time.
    type: str
  failure:
    description:
      - With O(state=restored), what went wrong. After restoring, the module fails with this, O(rolled_back) and what
        it restored (the role's rollback path).
      - V(unreachable) (no fresh connection after the activation), C(activation) followed by a colon and the errors
        (NetworkManager could not activate a profile), or the failed step and its message.
    type: str
  rolled_back:
    description:
      - With O(failure), what NetworkManager's rollback restored, in words (M(kvmhost.bridging.nm_checkpoint)'s RV(msg)).
      - Without it, the message says that NetworkManager rolled back by itself when the checkpoint's timeout ran out.
    type: str
  reload:
    description: Ask a running NetworkManager to load each keyfile written (C(nmcli connection load)).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One diff per keyfile written and per ifcfg file moved away.
  idempotent:
    support: full
    details: Once nothing is left in O(config_dir) to migrate, a run changes nothing.
  platform:
    platforms: posix
seealso:
  - module: kvmhost.bridging.nm_keyfile
  - module: kvmhost.bridging.ifcfg_info
  - module: kvmhost.bridging.nm_checkpoint
"""

EXAMPLES = r"""
- name: Migrate the ifcfg profiles to keyfiles
  kvmhost.bridging.nm_migrate_ifcfg:
    reload: true
  register: migration

- name: Undo it
  kvmhost.bridging.nm_migrate_ifcfg:
    state: restored
    backup_dir: "{{ migration.backup_dir }}"
"""

RETURN = r"""
msg:
  description: What was migrated (or restored).
  returned: always
  type: str
  sample: migrating ifcfg-breth0 (bridge) -> System breth0.nmconnection, ifcfg-eth0 (port) -> System eth0.nmconnection
migrated:
  description: One entry per ifcfg file, in the order written (bridges, ports, plain NICs).
  returned: with O(state=migrated)
  type: list
  elements: dict
  sample: [{ifcfg: /etc/sysconfig/network-scripts/ifcfg-breth0, keyfile: /etc/NetworkManager/system-connections/System breth0.nmconnection,
            id: System breth0, uuid: 5fcb8a2c-59a2-6b1e-1f4b-3a0e1c2d4e5f, type: bridge, role: bridge, interface: breth0,
            controller: null, autoconnect: true, write: true, backup: /var/lib/kvmhost-bridging/ifcfg-backup/20260101T120000Z/ifcfg-breth0}]
activate:
  description: The profiles to activate after loading, bridges first, then ports and plain NICs (not those with ONBOOT=no), each with uuid, id, interface.
  returned: with O(state=migrated)
  type: list
  elements: dict
  sample: [{uuid: 5fcb8a2c-59a2-6b1e-1f4b-3a0e1c2d4e5f, id: System eth0, interface: eth0}]
backup_dir:
  description: The directory that holds (or would hold) the ifcfg files and the manifest; null when nothing was left to migrate.
  returned: always
  type: str
  sample: /var/lib/kvmhost-bridging/ifcfg-backup/20260101T120000Z
reloaded:
  description: Whether NetworkManager was asked to load the keyfiles.
  returned: with O(state=migrated)
  type: bool
  sample: true
restored:
  description: The ifcfg files put back.
  returned: with O(state=restored)
  type: list
  elements: str
  sample: [/etc/sysconfig/network-scripts/ifcfg-eth0]
removed:
  description: The keyfiles removed.
  returned: with O(state=restored)
  type: list
  elements: str
  sample: [/etc/NetworkManager/system-connections/System eth0.nmconnection]
problems:
  description: On failure, every profile that cannot be migrated and why.
  returned: failure
  type: list
  elements: str
  sample: ["/etc/sysconfig/network-scripts/ifcfg-bond0 is of TYPE=Bond; ..."]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils import _nm_migrate
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "default": "migrated", "choices": ["migrated", "restored"]},
            "config_dir": {"type": "path", "default": "/etc/sysconfig/network-scripts"},
            "keyfile_dir": {"type": "path", "default": "/etc/NetworkManager/system-connections"},
            "backup_dir": {"type": "path", "default": "/var/lib/kvmhost-bridging/ifcfg-backup"},
            "stamp": {"type": "str"},
            "reload": {"type": "bool", "default": False},
            "failure": {"type": "str"},
            "rolled_back": {"type": "str"},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, _nm_migrate.run_module, module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_interface
short_description: Put a libvirt domain on a Linux bridge (an interface of type bridge)
version_added: 0.1.0
description:
  - Adds, changes and removes an C(<interface type='bridge'>) of a libvirt domain, the last step of putting a VM on
    the LAN through a bridge such as C(breth0).
  - Uses the libvirt API (libvirt-python). The domain XML is read once per definition, edited with an XML library and
    handed back to libvirt; the persistent definition (O(config)) with C(virDomainDefineXML), the running domain
    (O(live)) with C(virDomainAttachDeviceFlags), C(virDomainUpdateDeviceFlags) and C(virDomainDetachDeviceFlags).
  - The interface is found by its MAC address. Without O(mac), it is the interface that has the MAC derived from the
    domain and the bridge, else the first interface already on O(bridge) (with O(model), when given); a new one gets
    the derived MAC.
  - Other parts of an existing interface (PCI address, target, driver, bandwidth, ...) are kept.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The domain XML before and after, one diff for the persistent definition and one for the running domain.
  idempotent:
    support: full
  platform:
    platforms: posix
requirements:
  - libvirt-python on the managed host (python3-libvirt on RHEL-family hosts and on Debian)
options:
  domain:
    description:
      - Name (or UUID) of the libvirt domain, for example V(web01).
    type: str
    required: true
  bridge:
    description:
      - The Linux bridge the interface is on, for example V(breth0).
      - With O(state=present) it must exist on the hypervisor host. For a local O(uri) (V(qemu:///system),
        V(qemu:///session), V(test:///...)) that is the managed host, checked through
        C(/sys/class/net/<bridge>/bridge); for a remote O(uri) libvirt's interface API tells, when the driver can.
    type: str
    required: true
  mac:
    description:
      - MAC address of the guest's network card, for example V(52:54:00:12:34:56).
      - When not set, an existing interface keeps its MAC, and a new interface gets V(52:54:00) followed by the
        first three bytes of the SHA-256 of the domain's name, a newline and O(bridge) (UTF-8), so that every run picks
        the same address.
      - Multicast addresses (lowest bit of the first octet set) and V(00:00:00:00:00:00) are refused, as the kernel
        refuses them ("cannot assign requested address").
      - A MAC that another domain or a port of the bridge already uses on O(bridge) is refused.
    type: str
  model:
    description:
      - The NIC model the guest sees, for example V(virtio), V(e1000e) or V(rtl8139).
      - When not set, an existing interface keeps its model and a new interface gets V(virtio).
      - A running QEMU domain cannot change the model of a NIC; change it with O(live=false) and restart the domain.
      - With O(state=absent) and no O(mac), only interfaces of this model are removed.
    type: str
  state:
    description:
      - V(present) adds the interface or changes it to match; V(absent) removes it.
      - With V(absent) and no O(mac), every interface on O(bridge) (of O(model), when given) is removed.
    type: str
    choices: [present, absent]
    default: present
  live:
    description:
      - Also change the running domain (hot plug). Nothing happens on this side when the domain is not running.
    type: bool
    default: true
  config:
    description:
      - Change the persistent definition, which the domain uses from its next start.
      - A transient domain has none; set V(false) for it.
    type: bool
    default: true
  uri:
    description:
      - The libvirt connection URI, for example V(qemu:///system), V(qemu+ssh://root@kvm1/system) or, for tests,
        V(test:///default).
    type: str
    default: qemu:///system
notes:
  - Needs a read-write libvirt connection (root, or a member of the C(libvirt) group for V(qemu:///system)).
  - Drivers that cannot hot plug (libvirt's test driver) fail with O(live=true) on a running domain; use O(live=false).
  - A live detach completes when the guest acknowledges it; when it has not yet, the task warns.
seealso:
  - module: kvmhost.bridging.bridge_info
    description: Which bridge each tap is on and which guest holds it.
  - name: libvirt domain XML, network interfaces
    description: The interface element this module writes.
    link: https://libvirt.org/formatdomain.html#network-interfaces
"""

EXAMPLES = r"""
- name: Put web01 on breth0 (running domain and persistent definition)
  kvmhost.bridging.vm_interface:
    domain: web01
    bridge: breth0
    mac: "52:54:00:12:34:56"
    model: virtio

- name: A second NIC on the isolated bridge, MAC derived from domain and bridge
  kvmhost.bridging.vm_interface:
    domain: web01
    bridge: brisolated

- name: Change the model for the next boot only
  kvmhost.bridging.vm_interface:
    domain: web01
    bridge: breth0
    mac: "52:54:00:12:34:56"
    model: e1000e
    live: false

- name: Take web01 off brisolated
  kvmhost.bridging.vm_interface:
    domain: web01
    bridge: brisolated
    state: absent
"""

RETURN = r"""
interface:
  description:
    - The interface after the task (as it would be, in check mode), from the persistent definition when O(config=true),
      else from the running domain; null with O(state=absent).
  returned: always
  type: dict
  contains:
    mac:
      description: MAC address.
      type: str
      sample: "52:54:00:12:34:56"
    bridge:
      description: The bridge.
      type: str
      sample: breth0
    model:
      description: NIC model.
      type: str
      sample: virtio
    type:
      description: Interface type, V(bridge).
      type: str
    network:
      description: Always null for a bridge interface.
      type: str
    target:
      description: The tap libvirt recorded in the definition, if any.
      type: str
    tap:
      description: The tap of the running domain (for example V(vnet3)); only with O(live=true) on a running domain.
      type: str
      sample: vnet3
changes:
  description:
    - What the task changed (or would change, in check mode); also the plan.
    - C(view) is V(config) (persistent definition) or V(live) (running domain); C(action) is V(add), V(update) or
      V(remove); C(changed) names the properties an update changed (V(type), V(bridge), V(model)).
  returned: always
  type: list
  elements: dict
  sample:
    - view: config
      action: add
      mac: "52:54:00:12:34:56"
      changed: []
      before: null
      after: {type: bridge, mac: "52:54:00:12:34:56", bridge: breth0, network: null, model: virtio, target: null}
domain:
  description: The domain, as found before the task.
  returned: always
  type: dict
  contains:
    name:
      description: Name.
      type: str
    uuid:
      description: UUID.
      type: str
    active:
      description: Whether it was running.
      type: bool
    persistent:
      description: Whether it has a persistent definition.
      type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_dep import assert_libvirt
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_iface import ensure_interface, open_connection
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_xml import Desired


def run(module):
    params = module.params
    desired = Desired(params["domain"], params["bridge"], params["state"], params["mac"], params["model"])
    conn = open_connection(params["uri"])
    try:
        result, warnings = ensure_interface(conn, params["uri"], desired, live=params["live"], config=params["config"], check_mode=module.check_mode)
    finally:
        conn.close()
    result["warnings"] = warnings
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "domain": {"type": "str", "required": True},
            "bridge": {"type": "str", "required": True},
            "mac": {"type": "str"},
            "model": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "live": {"type": "bool", "default": True},
            "config": {"type": "bool", "default": True},
            "uri": {"type": "str", "default": "qemu:///system"},
        },
        supports_check_mode=True,
    )
    assert_libvirt(module)
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

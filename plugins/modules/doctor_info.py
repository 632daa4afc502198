#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: doctor_info
short_description: Check a KVM host's bridges for the common failures, each problem with its fix
version_added: 0.1.0
description:
  - Reads the bridges, ports, taps and forwarding sysctls (netlink, as M(kvmhost.bridging.bridge_info) does), libvirt's
    domains and networks, the ifcfg files (as NetworkManager reads them), the live FORWARD chain of every iptables
    backend, the addresses, firewalld, NetworkManager's profiles and the DHCP clients, and returns the problems found,
    each with its fix, and a report. Changes nothing.
  - The checks are those of the P(kvmhost.bridging.doctor#role) role, which prints this module's report; see its
    documentation for what each check finds.
  - A bridge's NIC is a port that bridge_info calls an uplink, or a port whose ifcfg file names the bridge (C(BRIDGE=)).
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.INFO_MODULE
options:
  name:
    description: The host's name in the report's first line.
    type: str
    default: localhost
  skip:
    description: Ids of checks not to run.
    type: list
    elements: str
    choices: [forwarding, reject_rule, empty_bridge, stp, multicast_mac, nic_address, nm_controlled, bridge_mac, domain_bridge,
              firewalld_block, firewalld_zone, firewalld_forward, firewalld_libvirt, nm_ifcfg, nm_boot, dhcp_port, dhcp_expiry,
              libvirt_routing]
    default: []
  network_manager:
    description:
      - What brings the host's network up, for the V(nm_controlled) check. V(auto) asks the system bus whether
        NetworkManager runs; V(running) and V(stopped) say it.
    type: str
    choices: [auto, running, stopped]
    default: auto
  config_dir:
    description: Directory of the ifcfg files.
    type: path
    default: /etc/sysconfig/network-scripts
  keyfile_dir:
    description: Directory of NetworkManager's keyfile profiles.
    type: path
    default: /etc/NetworkManager/system-connections
  libvirt_uri:
    description:
      - The libvirt connection URI (read-only) for the V(domain_bridge) and V(libvirt_routing) checks and for naming the
        domain behind each tap. Empty does not ask libvirt.
    type: str
    default: qemu:///system
seealso:
  - module: kvmhost.bridging.bridge_info
  - module: kvmhost.bridging.firewalld_info
  - module: kvmhost.bridging.nm_doctor_info
"""

EXAMPLES = r"""
- name: Check the host's bridges
  kvmhost.bridging.doctor_info:
    name: "{{ inventory_hostname }}"
    skip: [stp]
  register: doctor

- name: Print the report
  ansible.builtin.debug:
    msg: "{{ doctor.report.splitlines() }}"
"""

RETURN = r"""
problems:
  description: The problems found, in the report's order, each with C(check), C(subject), C(problem) and C(fix).
  returned: always
  type: list
  elements: dict
  sample:
    - check: bridge_mac
      subject: breth0
      problem: "Bridge breth0 has MAC 8a:...: a DHCP server sees another client, ..."
      fix: "Give the bridge the NIC's MAC: ip link set breth0 address 52:54:00:12:34:56 ..."
not_run:
  description:
    - Checks that could not run on this host (not those skipped), such as V(domain_bridge) where libvirt said nothing,
      the firewalld checks where firewalld does not run, V(libvirt_routing) with fewer than two libvirt networks.
  returned: always
  type: list
  elements: str
  sample: [domain_bridge]
report:
  description: The report, one problem and its fix after another, the checks run, and bridge_info's report.
  returned: always
  type: str
  sample: |
    doctor: kvm01: 1 problem(s) found:
    1. [bridge_mac] breth0: Bridge breth0 has MAC 8a:...
       fix: Give the bridge the NIC's MAC: ...
    checks run: forwarding, reject_rule, ...
info:
  description: What M(kvmhost.bridging.bridge_info) returns (bridges, unbridged_taps, forwarding, libvirt, report).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._doctor import CHECKS
from ansible_collections.kvmhost.bridging.plugins.module_utils._doctor_read import run
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "default": "localhost"},
            "skip": {"type": "list", "elements": "str", "choices": list(CHECKS), "default": []},
            "network_manager": {"type": "str", "choices": ["auto", "running", "stopped"], "default": "auto"},
            "config_dir": {"type": "path", "default": "/etc/sysconfig/network-scripts"},
            "keyfile_dir": {"type": "path", "default": "/etc/NetworkManager/system-connections"},
            "libvirt_uri": {"type": "str", "default": "qemu:///system"},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

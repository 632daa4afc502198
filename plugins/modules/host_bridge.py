#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: host_bridge
short_description: Bridge a host's NIC under a rollback guard or a NetworkManager checkpoint, in one task
version_added: 0.1.0
description:
  - Bridges a NIC of a host whose network is brought up by the network service (network-scripts) into a Linux
    bridge, persistently (ifcfg files with C(NM_CONTROLLED=no)) and at runtime (over netlink), in one task.
  - "The steps: find the NIC, read its ifcfg files, plan with the writers in check mode, install python3-pyroute2
    where needed, arm M(kvmhost.bridging.guard), write the files, start the guard's countdown, bridge the NIC, set the
    static addresses and the default route, and confirm over a fresh connection (the connection is reset, as
    M(ansible.builtin.reboot) reconnects). Without the confirmation the host restores itself."
  - With O(backend=networkmanager) it writes the bridge's keyfile and turns the NIC's own profile into its port
    (M(kvmhost.bridging.nm_bridge_plan), M(kvmhost.bridging.nm_keyfile)), activates them under a checkpoint
    (M(kvmhost.bridging.nm_checkpoint)), and confirms by destroying the checkpoint over a fresh connection; without the
    confirmation NetworkManager restores the devices and the profiles by itself.
  - A step that fails rolls back at once. A step that cuts the connection is rolled back by the host itself
    O(rollback_timeout) seconds after the change; the action waits for the host to answer again and fails with what
    was restored.
  - It uses no async, so it works the same under any strategy (linear, free, Mitogen's) over ssh or paramiko.
  - This is an action plugin that runs the collection's modules; the P(kvmhost.bridging.host_bridge#role) role
    calls it with its variables, after gathering the network facts (it reads the host's C(ansible_facts)).
options:
  backend:
    description:
      - What brings the host's network up, as M(kvmhost.bridging.network_backend_info) chose it.
    type: str
    choices: [initscripts, networkmanager]
    default: initscripts
  nm_config_dir:
    description: With O(backend=networkmanager), the directory of the keyfiles.
    type: path
    default: /etc/NetworkManager/system-connections
  name:
    description: The bridge.
    type: str
    default: breth0
  nic:
    description:
      - The NIC to bridge. V(auto) takes the interface of the default route, or on a rerun the bridge's own NIC.
    type: str
    default: auto
  bootproto:
    description:
      - V(inherit) keeps what the NIC's file (or the NIC at runtime) has; V(dhcp) and V(static) set it.
    type: str
    choices: [inherit, dhcp, static]
    default: inherit
  addresses:
    description: With O(bootproto=static), the bridge's addresses as address/prefix.
    type: list
    elements: str
    default: []
  gateway:
    description: With O(bootproto=static), the default gateway.
    type: str
    default: ""
  dns:
    description: DNS servers for the bridge's file; empty keeps the NIC's.
    type: list
    elements: str
    default: []
  stp:
    description: Whether the bridge runs STP.
    type: bool
    default: false
  forward_delay:
    description: The bridge's forward delay in seconds (2 to 30 with O(stp=true)).
    type: int
    default: 0
  persist:
    description: Whether to write the ifcfg files too, or change the runtime only.
    type: bool
    default: true
  rollback_timeout:
    description:
      - Seconds the guard waits for the confirmation over a fresh connection. V(0) makes the change without the guard.
    type: int
    default: 60
  config_dir:
    description: The directory of the ifcfg files.
    type: path
    default: /etc/sysconfig/network-scripts
  install_pyroute2:
    description: Install python3-pyroute2 with the host's package manager when the host's Python cannot import it.
    type: bool
    default: true
extends_documentation_fragment:
  - kvmhost.bridging.attributes
attributes:
  check_mode:
    support: full
    details: In check mode the writers run in check mode and the action reports what it would do.
  diff_mode:
    support: full
    details: Returns the diffs of the ifcfg files or the keyfiles.
  idempotent:
    support: full
    details: A second run finds the host bridged as asked, arms nothing and reports no change.
  platform:
    platforms: linux
notes:
  - The host's facts must include the network and python subsets (M(ansible.builtin.setup) with
    O(ansible.builtin.setup#module:gather_subset=[!all, !min, network, python])).
seealso:
  - module: kvmhost.bridging.guard
  - module: kvmhost.bridging.ifcfg
  - module: kvmhost.bridging.bridge
  - module: kvmhost.bridging.nm_checkpoint
author:
  - kvmhost.bridging contributors (@kvmhost)
"""

EXAMPLES = r"""
- name: Gather the network facts and the host's Python
  ansible.builtin.setup:
    gather_subset: ["!all", "!min", network, python]

- name: Bridge the NIC of the default route into breth0, confirmed over a fresh connection
  kvmhost.bridging.host_bridge:
    name: breth0
    rollback_timeout: 60

- name: Give a LAN NIC's bridge a static address
  kvmhost.bridging.host_bridge:
    nic: eth1
    name: breth1
    bootproto: static
    addresses: [198.18.5.10/24]
"""

RETURN = r"""
backend:
  description: The backend that bridged the host.
  returned: after the variables were checked
  type: str
  sample: initscripts
nic:
  description: The NIC that is bridged.
  returned: after the variables were checked
  type: str
  sample: eth0
bridge:
  description: The bridge.
  returned: after the variables were checked
  type: str
  sample: breth0
planned:
  description: What the change does; empty when the host is bridged as asked.
  returned: after the plan
  type: list
  elements: str
  sample: ["write /etc/sysconfig/network-scripts/ifcfg-breth0", "create bridge breth0", "attach eth0 to breth0"]
actions:
  description: The runtime steps of M(kvmhost.bridging.bridge) for the change.
  returned: after the plan
  type: list
  elements: str
ip_batch:
  description: The C(ip -batch) lines that set the static addresses and the default route.
  returned: after the variables were checked
  type: list
  elements: str
pyroute2:
  description: Whether the host's Python imports pyroute2, and whether the action installed it.
  returned: when a change was made
  type: dict
  sample: {present: true, installed: false}
steps:
  description: The results of the change's steps, by step.
  returned: when a change was made
  type: dict
checkpoint:
  description:
    - With O(backend=networkmanager), the results of M(kvmhost.bridging.nm_checkpoint), C(create), C(destroy) (the
      confirmation) and C(rollback).
  returned: when a change was made under a checkpoint
  type: dict
guard:
  description:
    - The guard's results, C(arm) (M(kvmhost.bridging.guard) with V(arm)), C(decision) (V(confirm) or
      V(rollback), over the fresh connection) and C(outcome) (the watcher's outcome).
  returned: when the change was guarded
  type: dict
"""

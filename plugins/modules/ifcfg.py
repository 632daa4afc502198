#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ifcfg
short_description: Manage ifcfg files for bridges and NICs, as NetworkManager and initscripts read them
version_added: 0.1.0
description:
  - Creates, updates or removes C(ifcfg-<device>) in O(config_dir), the persistent network configuration
    of RHEL-family hosts, read by NetworkManager's ifcfg-rh plugin and sourced by bash in initscripts.
  - Reads values with NetworkManager's rules (bare, single-quoted, double-quoted and C($'...') values,
    concatenation, trailing comments) and writes them with NetworkManager's quoting rules, so that both
    NetworkManager and bash read back exactly the given value and bash expands or executes nothing.
  - Rewrites a file in place. Comments, blank lines, other keys and the order of lines stay. Only keys whose
    value differs change; new keys are appended. When the file is written, lines that neither reader can
    agree on (badly quoted values, lines that are not assignments) are kept as C(#NM:) comments, as
    NetworkManager does; their presence alone makes the module rewrite the file.
  - The same goes for assignments that bash would read differently from NetworkManager, so that bash runs
    nothing from a file this module writes. Examples are a value with an unquoted backtick or C($(...)), or a
    line behind a vertical tab, form feed or carriage return. They are commented out with a warning, and a
    managed key written so is rewritten.
  - A file that is a symbolic link is written through; the link stays. A new file gets mode 0644 whatever the
    umask.
  - Does not bring interfaces up or down; it only writes the file.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the file before and after, and lists the changed keys in RV(changes).
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  device:
    description:
      - The interface name. The file is C(ifcfg-<device>) and gets C(DEVICE=<device>).
      - Must be a valid Linux interface name, at most 15 bytes, without C(/), C(:), whitespace or control characters,
        and not C(.) or C(..).
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the file, V(absent) removes it. With V(absent), only O(device),
        O(config_dir) and O(backup) matter.
    type: str
    choices: [present, absent]
    default: present
  type:
    description:
      - The interface type, written as C(TYPE=) with the capitalisation initscripts compares against
        (V(bridge) becomes C(TYPE=Bridge), V(ethernet) C(TYPE=Ethernet), and so on).
      - Not managed when omitted.
    type: str
    choices: [bridge, ethernet, tap, vlan, bond, team, infiniband]
  bridge:
    description:
      - Makes the device a port of this bridge (C(BRIDGE=)).
      - A port carries no IP configuration; the module refuses O(addresses), O(gateway), O(dns),
        O(bootproto=dhcp) or O(bootproto=static) and IP keys in O(settings) for a port, because initscripts
        ignores them.
    type: str
  bootproto:
    description:
      - C(BOOTPROTO=). V(static) needs O(addresses).
    type: str
    choices: [none, dhcp, static]
  onboot:
    description: C(ONBOOT=yes) or C(ONBOOT=no).
    type: bool
  nm_controlled:
    description: C(NM_CONTROLLED=yes) or C(NM_CONTROLLED=no).
    type: bool
  userctl:
    description: C(USERCTL=yes) or C(USERCTL=no); read only by usernetctl.
    type: bool
  peerdns:
    description: C(PEERDNS=yes) or C(PEERDNS=no).
    type: bool
  peerntp:
    description: C(PEERNTP=yes) or C(PEERNTP=no); read only by dhclient-script.
    type: bool
  hwaddr:
    description:
      - C(HWADDR=), the MAC address that binds the file to a NIC. Six hex octets separated by colons;
        multicast and all-zero addresses are refused.
    type: str
  macaddr:
    description:
      - C(MACADDR=), a MAC address to set on the interface. Same format as O(hwaddr).
    type: str
  addresses:
    description:
      - IPv4 addresses with prefix length, like V(198.18.5.10/24).
      - One address is written as C(IPADDR) and C(PREFIX); several as C(IPADDR0), C(PREFIX0), C(IPADDR1), ...
      - When given (even empty), the module owns all C(IPADDR*), C(PREFIX*) and C(NETMASK*) keys and removes the
        ones it does not write. Set IPv6 addresses with O(settings) (C(IPV6INIT), C(IPV6ADDR)).
    type: list
    elements: str
  gateway:
    description: C(GATEWAY=), an IPv4 address.
    type: str
  dns:
    description:
      - DNS servers, written as C(DNS1), C(DNS2), ...
      - When given (even empty), the module owns all C(DNS<n>) keys and removes the ones it does not write.
    type: list
    elements: str
  stp:
    description: C(STP=yes) or C(STP=no). Bridges only.
    type: bool
  delay:
    description:
      - C(DELAY=), the bridge forward delay in seconds. Bridges only; with O(stp=true) the kernel accepts 2 to 30.
    type: int
  bridging_opts:
    description:
      - Bridge or bridge port options, written as C(BRIDGING_OPTS="key=value ...") in the given order.
        initscripts writes each to C(/sys/class/net/<device>/bridge/<key>) (bridge) or C(brport/<key>) (port).
      - Keys are sysfs names (lowercase letters, digits, C(_)). Values may use letters, digits and the characters
        C(_.:,+-); booleans become C(1) and C(0).
      - An empty dict removes C(BRIDGING_OPTS).
    type: dict
  settings:
    description:
      - Any other keys, as a dict of key and value. Strings are written with correct quoting, numbers as they are,
        booleans as C(yes)/C(no); a value of V(null) removes the key.
      - A key that an option above writes must be set through that option. Shell and loader variables
        (C(PATH), C(IFS), C(LD_*), C(BASH*), ...) are refused, since initscripts sources the file as root.
    type: dict
    default: {}
  purge:
    description:
      - Remove every key that this task does not set. Comments stay.
    type: bool
    default: false
  config_dir:
    description:
      - The directory of the ifcfg files. It must exist.
    type: path
    default: /etc/sysconfig/network-scripts
  backup:
    description:
      - Keep a copy of the old file, named C(ifcfg-<device>.<pid>.<timestamp>~), when the file is changed or removed.
        initscripts and NetworkManager ignore files whose names end in C(~).
    type: bool
    default: false
notes:
  - Values are compared as both readers see them. A value spelled in a way that bash reads differently from
    NetworkManager (for example an unquoted C(~) or C($)) is rewritten even if NetworkManager reads the wanted value.
  - Parallel tasks on one host are safe; the module holds a lock on O(config_dir) while it reads, plans and writes.
seealso:
  - name: NetworkManager ifcfg-rh settings
    description: The keys that NetworkManager reads from ifcfg files.
    link: https://networkmanager.dev/docs/api/latest/nm-settings-ifcfg-rh.html
"""

EXAMPLES = r"""
- name: Bridge breth0 that takes the host's address by DHCP
  kvmhost.bridging.ifcfg:
    device: breth0
    type: bridge
    bootproto: dhcp
    onboot: true
    stp: false
    delay: 0

- name: Make eth0 a port of breth0
  kvmhost.bridging.ifcfg:
    device: eth0
    bridge: breth0
    bootproto: none
    hwaddr: "52:54:00:12:34:56"
    onboot: true
    nm_controlled: false

- name: Isolated bridge for VMs with a static address and bridge options
  kvmhost.bridging.ifcfg:
    device: brvm
    type: bridge
    bootproto: static
    addresses: [198.18.5.1/24]
    onboot: true
    bridging_opts:
      priority: 32768
      multicast_snooping: 0
    settings:
      NAME: VM network

- name: Remove a key and keep everything else
  kvmhost.bridging.ifcfg:
    device: eth1
    settings:
      MTU: null

- name: Remove the file, keeping a backup
  kvmhost.bridging.ifcfg:
    device: eth1
    state: absent
    backup: true
"""

RETURN = r"""
path:
  description: The path of the ifcfg file.
  returned: always
  type: str
  sample: /etc/sysconfig/network-scripts/ifcfg-breth0
changed_keys:
  description: The keys that were (or in check mode would be) added, changed or removed, in order.
  returned: always
  type: list
  elements: str
  sample: [BOOTPROTO, STP]
changes:
  description: One entry per changed key, with the value before and after (null when absent).
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: The key.
      type: str
    action:
      description: V(add), V(set) or V(remove).
      type: str
    before:
      description: The value before, as NetworkManager reads it; null if absent or badly quoted.
      type: str
    after:
      description: The value after; null if removed.
      type: str
  sample: [{key: BOOTPROTO, action: set, before: none, after: dhcp}]
commented_lines:
  description: Lines that the rewrite keeps only as C(#NM:) comments, because neither reader could use them.
  returned: always
  type: list
  elements: str
  sample: ["wrong line"]
variables:
  description: The keys and values in the file afterwards, as NetworkManager reads them; null for a badly quoted value.
  returned: always
  type: dict
  sample: {DEVICE: breth0, TYPE: Bridge, BOOTPROTO: dhcp, ONBOOT: "yes"}
backup_file:
  description: The backup of the old file.
  returned: when O(backup=true) and the file was changed or removed
  type: str
  sample: /etc/sysconfig/network-scripts/ifcfg-eth0.1234.2026-01-01@12:00:00~
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils import _ifcfg, _ifcfg_codec
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError, run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import (
    atomic_write,
    directory_lock,
    read_bytes,
    remove_file,
    text_diff,
)

ARGUMENT_SPEC = {
    "device": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "type": {"type": "str", "choices": sorted(_ifcfg.TYPES)},
    "bridge": {"type": "str"},
    "bootproto": {"type": "str", "choices": ["none", "dhcp", "static"]},
    "onboot": {"type": "bool"},
    "nm_controlled": {"type": "bool"},
    "userctl": {"type": "bool"},
    "peerdns": {"type": "bool"},
    "peerntp": {"type": "bool"},
    "hwaddr": {"type": "str"},
    "macaddr": {"type": "str"},
    "addresses": {"type": "list", "elements": "str"},
    "gateway": {"type": "str"},
    "dns": {"type": "list", "elements": "str"},
    "stp": {"type": "bool"},
    "delay": {"type": "int"},
    "bridging_opts": {"type": "dict"},
    "settings": {"type": "dict", "default": {}},
    "purge": {"type": "bool", "default": False},
    "config_dir": {"type": "path", "default": "/etc/sysconfig/network-scripts"},
    "backup": {"type": "bool", "default": False},
}


def run(module):
    params = module.params
    request = _ifcfg.build_request(params)
    config_dir = os.path.dirname(request.path)
    absent = params["state"] == "absent"
    warnings = []
    backup_file = None

    if not os.path.isdir(config_dir):
        if not absent:
            raise ModuleError("config_dir %s does not exist; create it first (on RHEL-family hosts it comes with the OS)." % config_dir)
        plan = _ifcfg.plan_remove(None)
    else:
        with directory_lock(config_dir):
            data = read_bytes(request.path)
            before = None if data is None else data.decode("utf-8", "surrogateescape")
            if absent:
                plan = _ifcfg.plan_remove(before)
            else:
                plan, warnings = _ifcfg.plan(before, request)
            if plan.changed and not module.check_mode:
                if absent:
                    backup_file = remove_file(module, request.path, params["backup"])
                else:
                    backup_file = atomic_write(module, request.path, plan.after.encode("utf-8", "surrogateescape"), 0o644, params["backup"])

    result = {
        "warnings": warnings,
        "changed": plan.changed,
        "path": request.path,
        "changed_keys": plan.changed_keys,
        "changes": [dict(change.as_dict(), before=_ifcfg_codec.display(change.before), after=_ifcfg_codec.display(change.after)) for change in plan.changes],
        "commented_lines": [_ifcfg_codec.display(line) for line in plan.commented],
        "variables": {key: _ifcfg_codec.display(value) for key, value in plan.values.items()},
    }
    if backup_file:
        result["backup_file"] = backup_file
    result["diff"] = text_diff(request.path, _ifcfg_codec.display(plan.before), _ifcfg_codec.display(plan.after))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

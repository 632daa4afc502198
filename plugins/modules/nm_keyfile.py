#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nm_keyfile
short_description: Write one NetworkManager keyfile profile for a bridge, a bridge port or a NIC
version_added: 0.2.0
description:
  - Creates, updates or removes one NetworkManager connection profile as a keyfile in O(config_dir)
    (C(/etc/NetworkManager/system-connections)), the profile format of RHEL 9, RHEL 10, Fedora and every
    NetworkManager host. Covers bridges, bridge ports (an ethernet profile with a controller), plain ethernet
    profiles and isolated bridges (a bridge without ports).
  - Writes exactly as NetworkManager's keyfile plugin reads (nm-settings-keyfile(5)), with GLib's key file rules
    and escapes. A rewrite changes only the keys that differ; comments, other keys and sections it does not know
    stay as they are.
  - A port gets both spellings of the port keys, C(master=) and C(slave-type=) (all NetworkManager versions)
    and C(controller=) and C(port-type=) (1.46 and later), so every supported NetworkManager reads it as a port.
  - The file is written atomically (a temporary file starting with C(.), which NetworkManager ignores), under
    a lock on O(config_dir), as C(root:root 0600) whatever the umask; NetworkManager ignores profiles that others
    can read or write or that a non-root user owns. An existing file with a wrong owner or mode is fixed.
  - A profile of the same interface that already exists becomes the wanted profile (see O(adopt)) instead of a
    second profile for one NIC; it keeps its file name, id and uuid. A new profile gets a random uuid that later
    runs keep.
  - Writing does not apply anything. With O(reload=true) the module asks a running NetworkManager to load the file
    (C(nmcli connection load)); activating the profile is a separate step.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the file before and after, and lists every changed key in RV(changes).
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  name:
    description:
      - The profile's name, C([connection] id=). A new profile is written to C(<name>.nmconnection).
      - Must not contain C(/), start with C(.), end with C(~) or hold control characters, so that the file name
        is the name and NetworkManager does not ignore the file.
      - When O(adopt) finds an existing profile of the interface under another name, that profile keeps its name;
        RV(id) returns it.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the profile, V(absent) removes the profile named O(name) (found by its id in
        O(config_dir)). With V(absent), only O(name), O(config_dir), O(backup) and O(reload) matter.
    type: str
    choices: [present, absent]
    default: present
  type:
    description:
      - The profile's type. A bridge port is V(ethernet) with O(controller).
      - Required with O(state=present).
    type: str
    choices: [bridge, ethernet]
  interface:
    description:
      - The interface the profile applies to, C([connection] interface-name=). Required with O(state=present).
      - Must be a valid Linux interface name (at most 15 bytes, no C(/), C(:), whitespace or control characters).
    type: str
  controller:
    description:
      - Makes this ethernet profile a port of the bridge with this interface name. A port has no IP configuration,
        so O(ipv4) and O(ipv6) are refused, and existing C([ipv4]) and C([ipv6]) sections are removed
        (NetworkManager drops them for ports anyway).
      - Without it, existing port keys of an adopted profile are removed, so the NIC is a plain NIC again.
    type: str
  mac_address:
    description:
      - C([ethernet] mac-address=), which binds an ethernet profile to the NIC with this MAC. Six hex octets with
        colons; multicast and all-zero addresses are refused.
    type: str
  cloned_mac_address:
    description:
      - C([ethernet] cloned-mac-address=), the MAC the interface takes. For a bridge, give the MAC of the NIC that
        becomes its port, so the bridge keeps the NIC's DHCP lease. Also V(preserve), V(permanent), V(random) or
        V(stable).
    type: str
  autoconnect:
    description: C([connection] autoconnect=), whether NetworkManager activates the profile by itself (at boot).
    type: bool
  ipv4:
    description:
      - IPv4 settings, C([ipv4]). Only the given keys are managed. Not for ports.
    type: dict
    suboptions:
      method:
        description:
          - V(auto) (DHCP), V(manual) (needs O(ipv4.addresses)), V(disabled) or V(link-local).
        type: str
        choices: [auto, manual, disabled, link-local]
      addresses:
        description:
          - Addresses with prefix length, like V(198.18.5.10/24), written as C(address1=), C(address2=), ...
          - When given (even empty), all C(address*) keys of the section are owned by the module.
        type: list
        elements: str
      gateway:
        description: The default gateway, C(gateway=). An empty string removes it.
        type: str
      dns:
        description: DNS servers, C(dns=) as a list. An empty list removes the key.
        type: list
        elements: str
  ipv6:
    description:
      - IPv6 settings, C([ipv6]), as for O(ipv4). O(ipv6.method) also takes V(ignore).
    type: dict
    suboptions:
      method:
        description: V(auto), V(manual), V(disabled), V(link-local) or V(ignore).
        type: str
        choices: [auto, manual, disabled, link-local, ignore]
      addresses:
        description: Addresses with prefix length, like V(2001:db8::5/64).
        type: list
        elements: str
      gateway:
        description: The default gateway. An empty string removes it.
        type: str
      dns:
        description: DNS servers. An empty list removes the key.
        type: list
        elements: str
  stp:
    description: C([bridge] stp=). Bridges only.
    type: bool
  forward_delay:
    description:
      - C([bridge] forward-delay=) in seconds. Bridges only; NetworkManager accepts 2 to 30 (0 is allowed when
        O(stp=false)).
    type: int
  settings:
    description:
      - Other keys, as a dict of sections, each a dict of keys and values. Strings are written with GLib's escapes, lists as C(a;b;),
        booleans as C(true)/C(false), numbers as they are; a value of V(null) removes the key, and a section of
        V(null) removes the section.
      - Keys that an option above writes must be set through that option. Sections are named as NetworkManager
        writes them (V(ethernet), not V(802-3-ethernet)).
    type: dict
    default: {}
  uuid:
    description:
      - The uuid of a new profile. An existing profile keeps its uuid unless this is given; then it must match or
        the uuid is changed (NetworkManager then sees a new profile).
    type: str
  adopt:
    description:
      - When no profile named O(name) exists, look for an existing ethernet profile of the same interface in
        O(config_dir) (by C(interface-name=) O(interface), or by C(mac-address=) equal to O(mac_address) or the
        interface's own MAC) and rewrite that one. This turns a host's "System eth0" profile into the bridge port
        instead of leaving two profiles that both want eth0.
      - When several profiles match, the module fails and lists them; choose one with O(name).
      - Bridge profiles are not adopted; other bridge profiles of the same interface are listed in
        RV(other_profiles) with a warning.
    type: bool
    default: true
  config_dir:
    description:
      - The profile directory. It must exist, be owned by root and not be writable by group or others.
    type: path
    default: /etc/NetworkManager/system-connections
  backup:
    description:
      - Keep a copy of the old file, named C(<file>.<pid>.<timestamp>~), when it is changed or removed.
        NetworkManager ignores files whose names end in C(~).
    type: bool
    default: false
  reload:
    description:
      - After a change, run C(nmcli connection load <file>) (or, after a removal, C(nmcli connection reload)) when
        NetworkManager runs, so it knows the new profile. Nothing is activated. Skipped (RV(reloaded=false)) when
        NetworkManager does not run.
    type: bool
    default: false
notes:
  - Parallel tasks on one host are safe; the module holds a lock on O(config_dir) while it reads, plans and writes.
  - Only O(config_dir) is searched; profiles in C(/run/NetworkManager/system-connections) (in memory) and ifcfg files
    are not changed.
seealso:
  - module: kvmhost.bridging.nm_keyfile_info
  - name: nm-settings-keyfile(5)
    description: The keyfile format of NetworkManager.
    link: https://networkmanager.dev/docs/api/latest/nm-settings-keyfile.html
"""

EXAMPLES = r"""
- name: Bridge breth0 that keeps eth0's MAC, and so its DHCP lease
  kvmhost.bridging.nm_keyfile:
    name: breth0
    type: bridge
    interface: breth0
    cloned_mac_address: "52:54:00:12:34:56"
    stp: false
    forward_delay: 0
    ipv4:
      method: auto

- name: Turn eth0's existing profile into the port of breth0
  kvmhost.bridging.nm_keyfile:
    name: breth0-port-eth0
    type: ethernet
    interface: eth0
    controller: breth0
    backup: true

- name: Isolated bridge for VMs with a static address and no IPv6
  kvmhost.bridging.nm_keyfile:
    name: brvm
    type: bridge
    interface: brvm
    ipv4:
      method: manual
      addresses: [198.18.5.1/24]
    ipv6:
      method: disabled
    settings:
      bridge:
        multicast-snooping: false

- name: Remove a profile, keeping a backup, and tell NetworkManager
  kvmhost.bridging.nm_keyfile:
    name: brvm
    state: absent
    backup: true
    reload: true
"""

RETURN = r"""
path:
  description: The profile's file.
  returned: always
  type: str
  sample: /etc/NetworkManager/system-connections/breth0.nmconnection
id:
  description: The profile's name (C(connection.id)); that of the adopted profile when one was adopted.
  returned: always
  type: str
  sample: breth0
uuid:
  description: The profile's uuid; null when O(state=absent).
  returned: always
  type: str
  sample: 5f7b6c1e-2f1a-4f55-9a57-3e1d2c0b9a10
adopted:
  description: Whether an existing profile of the interface under another name was rewritten (see O(adopt)).
  returned: always
  type: bool
  sample: false
other_profiles:
  description: Other files in O(config_dir) whose profiles also apply to the interface and may compete for it.
  returned: always
  type: list
  elements: str
  sample: []
changed_keys:
  description: The changed keys as C(section.key), in order; C(file.mode) and C(file.owner) when those were fixed.
  returned: always
  type: list
  elements: str
  sample: [connection.master, connection.slave-type]
changes:
  description: One entry per changed key, with the value before and after (null when absent).
  returned: always
  type: list
  elements: dict
  contains:
    section:
      description: The section (group) name.
      type: str
    key:
      description: The key; null when a whole section was removed.
      type: str
    action:
      description: V(add), V(set) or V(remove).
      type: str
    before:
      description: The value before, as written in the file.
      type: str
    after:
      description: The value after, as written in the file.
      type: str
  sample: [{section: ipv4, key: method, action: set, before: auto, after: manual}]
profile:
  description: The profile as NetworkManager reads it afterwards (see M(kvmhost.bridging.nm_keyfile_info)).
  returned: when O(state=present)
  type: dict
  sample: {id: breth0, type: bridge, interface_name: breth0, controller: null, ipv4: {method: auto}}
backup_file:
  description: The backup of the old file.
  returned: when O(backup=true) and the file was changed or removed
  type: str
  sample: /etc/NetworkManager/system-connections/breth0.nmconnection.1234.2026-01-01@12:00:00~
reloaded:
  description: Whether NetworkManager was asked to load the file (O(reload=true), a change, NetworkManager running).
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils import _keyfile_io
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit

_IP_OPTIONS = {
    "method": {"type": "str", "choices": ["auto", "manual", "disabled", "link-local"]},
    "addresses": {"type": "list", "elements": "str"},
    "gateway": {"type": "str"},
    "dns": {"type": "list", "elements": "str"},
}

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "type": {"type": "str", "choices": ["bridge", "ethernet"]},
    "interface": {"type": "str"},
    "controller": {"type": "str"},
    "mac_address": {"type": "str"},
    "cloned_mac_address": {"type": "str"},
    "autoconnect": {"type": "bool"},
    "ipv4": {"type": "dict", "options": _IP_OPTIONS},
    "ipv6": {"type": "dict", "options": dict(_IP_OPTIONS, method={"type": "str", "choices": ["auto", "manual", "disabled", "link-local", "ignore"]})},
    "stp": {"type": "bool"},
    "forward_delay": {"type": "int"},
    "settings": {"type": "dict", "default": {}},
    "uuid": {"type": "str"},
    "adopt": {"type": "bool", "default": True},
    "config_dir": {"type": "path", "default": "/etc/NetworkManager/system-connections"},
    "backup": {"type": "bool", "default": False},
    "reload": {"type": "bool", "default": False},
}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ("type", "interface"))],
        supports_check_mode=True,
    )
    run_and_exit(module, _keyfile_io.run_module, module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: tap
short_description: Persistent tap devices for KVM guests, one or hundreds per task
version_added: 0.1.0
description:
  - Creates, changes and removes persistent tap devices (C(vnet0), C(vnet1), ...) and puts them on a Linux bridge.
  - Reads the links of the host with one netlink dump, plans the difference and applies only that, in one netlink
    session for the whole list of O(taps).
  - The dump is read with the Python standard library; pyroute2 is imported only when something changes, so a run
    with nothing to do (and check mode) works without it.
  - Taps made here are persistent (C(TUNSETPERSIST)), so they stay when no process holds them.
  - O(bridge), O(mac), O(mtu) and O(up) change in place over netlink. O(owner), O(group) and O(vnet_hdr) change by
    attaching to the tap and O(multi_queue) only by creating the tap again; both need the tap to be free, so when a
    process (a running guest) holds the tap the task fails and names the process.
  - Many taps are removed with one request (a link group), which is about a hundred times faster than removing them
    one by one.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.PYROUTE2
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  name:
    description:
      - Name of one tap, for example V(vnet0).
      - At most 15 characters, without V(/), V(:), V(%) or white space.
      - Exactly one of O(name) and O(taps) is required.
    type: str
  taps:
    description:
      - Many taps in one task. Every entry takes the options below; an option an entry leaves out comes from the
        top-level option of the same name.
      - Exactly one of O(name) and O(taps) is required.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the tap.
        type: str
        required: true
      state:
        description: As the top-level O(state).
        type: str
        choices: [present, absent]
      bridge:
        description: As the top-level O(bridge).
        type: str
      owner:
        description: As the top-level O(owner).
        type: str
      group:
        description: As the top-level O(group).
        type: str
      multi_queue:
        description: As the top-level O(multi_queue).
        type: bool
      vnet_hdr:
        description: As the top-level O(vnet_hdr).
        type: bool
      mac:
        description: As the top-level O(mac).
        type: str
      mtu:
        description: As the top-level O(mtu).
        type: int
      up:
        description: As the top-level O(up).
        type: bool
  state:
    description:
      - V(present) creates the tap or changes it to match; V(absent) removes it.
      - V(absent) removes a tap even while a process holds it; that process loses its network device.
      - A name that exists but is not a tap (a NIC, a bridge, a veth) is never changed or removed; the task fails.
    type: str
    choices: [present, absent]
    default: present
  bridge:
    description:
      - The Linux bridge the tap is a port of. It must exist (see M(kvmhost.bridging.bridge)).
      - The empty string takes the tap off any bridge. When not set, the tap stays where it is.
    type: str
  owner:
    description:
      - User (name or uid) that may open the tap without privileges, for example V(qemu).
      - When not set, an existing tap keeps its owner and a new tap has none (only root can open it).
    type: str
  group:
    description:
      - Group (name or gid) whose members may open the tap.
      - When not set, an existing tap keeps its group and a new tap has none.
    type: str
  multi_queue:
    description:
      - Whether the tap has several queues (C(IFF_MULTI_QUEUE)), for guests with C(queues=N).
      - Cannot change on an existing tap; the tap is created again, which needs it free.
      - When not set, an existing tap keeps its value and a new tap is single-queue.
    type: bool
  vnet_hdr:
    description:
      - Whether frames carry a virtio-net header (C(IFF_VNET_HDR)); vhost-net and virtio guests want it.
      - When not set, an existing tap keeps its value and a new tap has it.
    type: bool
  mac:
    description:
      - MAC address of the host side of the tap, for example V(52:54:00:ab:cd:ef).
      - Multicast addresses (lowest bit of the first octet set) and V(00:00:00:00:00:00) are refused, as the kernel does.
      - When not set, an existing tap keeps its MAC and a new tap gets a random one from the kernel.
      - Not allowed at the top level together with more than one entry in O(taps).
    type: str
  mtu:
    description:
      - MTU of the tap, 68 to 65521. On a bridge whose MTU was never set, the bridge follows its smallest port.
      - When not set, an existing tap keeps its MTU and a new tap has 1500.
    type: int
  up:
    description:
      - Whether the tap is administratively up. Its carrier is only on while a process (the guest) holds it.
      - When not set, an existing tap keeps its state and a new tap is brought up.
    type: bool
notes:
  - Needs root (C(CAP_NET_ADMIN)) on the managed host; use O(ignore:become=true).
  - Works in the network namespace the module runs in.
seealso:
  - module: kvmhost.bridging.bridge_info
    description: Which taps exist, which bridge they are on and which guest holds them.
"""

EXAMPLES = r"""
- name: A tap for guest web01 on breth0, usable by qemu
  kvmhost.bridging.tap:
    name: vnet0
    bridge: breth0
    owner: qemu
    vnet_hdr: true
    mac: "52:54:00:ab:cd:ef"
    up: true

- name: Two hundred taps on virbr1 in one task
  kvmhost.bridging.tap:
    taps: "{{ range(200) | map('regex_replace', '^(.*)$', '{\"name\": \"vnet\\1\"}') | map('from_json') | list }}"
    bridge: virbr1
    owner: qemu

- name: Taps with their own settings
  kvmhost.bridging.tap:
    taps:
      - name: vnet10
        mac: "52:54:00:00:00:10"
        multi_queue: true
      - name: vnet11
        mac: "52:54:00:00:00:11"
        bridge: ""
    bridge: breth0

- name: Remove taps (one request for all of them)
  kvmhost.bridging.tap:
    taps: [{name: vnet10}, {name: vnet11}]
    state: absent
"""

RETURN = r"""
actions:
  description:
    - What the task did (or would do in check mode), one entry per tap that changed; also the diff.
    - C(action) is V(create), V(update), V(recreate) or V(delete); C(changes) maps each changed property to its
      C(before) and C(after); C(after) is the whole tap after a create or recreate; C(before) the whole tap before a
      delete, whose C(held) tells whether a process held it.
  returned: always
  type: list
  elements: dict
  sample:
    - action: update
      name: vnet0
      changes:
        mtu: {before: 1500, after: 9000}
taps:
  description:
    - Every tap the task keeps, as it is after the task (as it would be, in check mode).
    - C(mac) of a new tap is the kernel's random MAC; in check mode it is null.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the tap.
      type: str
    bridge:
      description: The bridge (or other master) the tap is a port of, or null.
      type: str
    owner:
      description: Owner uid, or null.
      type: int
    group:
      description: Group gid, or null.
      type: int
    multi_queue:
      description: Whether the tap is multi-queue.
      type: bool
    vnet_hdr:
      description: Whether frames carry a virtio-net header.
      type: bool
    mac:
      description: MAC address.
      type: str
    mtu:
      description: MTU.
      type: int
    up:
      description: Whether the tap is administratively up.
      type: bool
  sample:
    - name: vnet0
      bridge: breth0
      owner: 107
      group: null
      multi_queue: false
      vnet_hdr: true
      mac: "52:54:00:ab:cd:ef"
      mtu: 1500
      up: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._pyroute2_dep import iproute
from ansible_collections.kvmhost.bridging.plugins.module_utils._tap import run

TAP_OPTIONS = {
    "bridge": {"type": "str"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "multi_queue": {"type": "bool"},
    "vnet_hdr": {"type": "bool"},
    "mac": {"type": "str"},
    "mtu": {"type": "int"},
    "up": {"type": "bool"},
}
STATES = ["present", "absent"]


def main():
    item_options = {"name": {"type": "str", "required": True}, "state": {"type": "str", "choices": STATES}, **TAP_OPTIONS}
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str"},
            "taps": {"type": "list", "elements": "dict", "options": item_options},
            "state": {"type": "str", "choices": STATES, "default": "present"},
            **TAP_OPTIONS,
        },
        mutually_exclusive=[("name", "taps")],
        required_one_of=[("name", "taps")],
        supports_check_mode=True,
    )
    run_and_exit(module, run, module.params, module.check_mode, iproute)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: reject_rule
short_description: Remove the REJECT rules that block bridged guests, or let bridged traffic pass before them
version_added: 0.1.0
description:
  - Removes every REJECT rule of a chain that matches O(reject_with),
    duplicates too, such as the stock EL C(-A FORWARD -j REJECT --reject-with icmp-host-prohibited)
    that blocks bridged guests (even their DHCP) when C(net.bridge.bridge-nf-call-iptables=1).
  - Or, with O(accept_bridged=true), keeps those rules and inserts
    C(-m physdev --physdev-is-bridged -j ACCEPT) first in the chain.
  - Works with iptables-nft and iptables-legacy. Rules are read with
    C(iptables-nft-save) and C(iptables-legacy-save) (rules can sit in both) and
    compared on their parsed form, not their text; each backend that needs a
    change gets one C(iptables-restore --noflush) transaction, so a backend
    changes completely or not at all.
  - With O(persist=true) the same change is made in the saved rules file
    (iptables-save format, as read by iptables-services). Only the matching
    lines change, every other byte stays, and the file is replaced atomically.
  - If firewalld is running the module changes nothing and fails with what to do instead.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the chain's rules in each backend, and each rules file, before and after.
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  chain:
    description:
      - The chain, a built-in chain of O(table) or a user-defined chain.
    type: str
    default: FORWARD
  table:
    description:
      - The table. The kernel accepts the REJECT target only in C(filter).
    type: str
    default: filter
  reject_with:
    description:
      - Which REJECT rules to act on.
      - A type such as V(icmp-host-prohibited) selects the unconditional rule
        C(-j REJECT --reject-with <type>) only; a REJECT rule with more
        conditions (C(-o virbr0 -j REJECT ...)) is a different rule and stays.
        A rule without C(--reject-with) is the default type, V(icmp-port-unreachable).
      - V(any) selects every REJECT rule of the chain, with or without conditions.
      - Types are the IPv4 ones (V(icmp-net-unreachable), V(icmp-host-unreachable),
        V(icmp-port-unreachable), V(icmp-proto-unreachable), V(icmp-net-prohibited),
        V(icmp-host-prohibited), V(icmp-admin-prohibited), V(tcp-reset)) and their
        short iptables spellings. For ip6tables the ICMPv6 counterpart is used
        (V(icmp-host-prohibited) becomes V(icmp6-adm-prohibited), the stock EL
        ip6tables rule). With O(ip_version=ipv6) an ICMPv6 type may be given directly.
    type: str
    default: icmp-host-prohibited
  state:
    description:
      - With O(accept_bridged=false), V(absent) removes every matching REJECT
        rule and V(present) appends C(-j REJECT --reject-with <type>) unless a
        matching rule exists (to roll back).
      - With O(accept_bridged=true), V(absent) makes sure the REJECT rules do
        not apply to bridged traffic (the ACCEPT rule is first in the chain) and
        V(present) removes that ACCEPT rule again.
    type: str
    choices: [absent, present]
    default: absent
  accept_bridged:
    description:
      - Instead of removing the REJECT rules, insert C(-m physdev --physdev-is-bridged -j ACCEPT)
        as the first rule of the chain (moving it there if it is further down).
      - The rule goes into each backend that holds matching REJECT rules, else
        each backend with rules in the chain, else the backend the plain
        C(iptables) command uses.
    type: bool
    default: false
  persist:
    description:
      - Make the same change in the saved rules files (O(rules_file), O(rules_file_ipv6)).
      - A missing file is left missing; a file without the table is left as it is.
    type: bool
    default: true
  rules_file:
    description:
      - The saved IPv4 rules, in iptables-save format.
      - Defaults to C(/etc/sysconfig/iptables).
      - A symbolic link is written through; the link stays. A file with CRLF line endings gets CRLF lines.
      - The saved files are written before the live rules change.
    type: path
  rules_file_ipv6:
    description:
      - The saved IPv6 rules, in ip6tables-save format.
    type: path
    default: /etc/sysconfig/ip6tables
  ip_version:
    description:
      - Which rules to act on, those of iptables (V(ipv4)), ip6tables (V(ipv6)) or both.
    type: str
    choices: [ipv4, ipv6, both]
    default: ipv4
requirements:
  - iptables (C(iptables-nft-save)/C(iptables-legacy-save) and the matching restore commands,
    or C(iptables-save)/C(iptables-restore) on iptables older than 1.8)
notes:
  - The physdev match of O(accept_bridged) needs br_netfilter, which is what
    makes bridged traffic pass through iptables in the first place.
seealso:
  - module: kvmhost.bridging.ip_forward
"""

EXAMPLES = r"""
- name: Remove the stock EL REJECT rule from FORWARD, live and in /etc/sysconfig/iptables
  kvmhost.bridging.reject_rule:
    chain: FORWARD
    reject_with: icmp-host-prohibited
    state: absent

- name: Keep the REJECT rules, but let bridged guests through first (IPv4 and IPv6)
  kvmhost.bridging.reject_rule:
    chain: FORWARD
    accept_bridged: true
    ip_version: both

- name: Remove every REJECT rule of a user chain, only at runtime
  kvmhost.bridging.reject_rule:
    chain: LIBVIRT_FWI
    reject_with: any
    persist: false

- name: Roll back - put the stock rule back
  kvmhost.bridging.reject_rule:
    chain: FORWARD
    reject_with: icmp-host-prohibited
    state: present
"""

RETURN = r"""
changes:
  description:
    - One entry per place changed (would change, in check mode), a backend's
      live table or a rules file, with the rules removed and inserted.
  returned: always
  type: list
  elements: dict
  contains:
    ip_version:
      description: V(ipv4) or V(ipv6).
      type: str
    backend:
      description: V(nft) or V(legacy) for a live change, V(null) for a file.
      type: str
    path:
      description: The rules file, V(null) for a live change.
      type: str
    table:
      description: The table.
      type: str
    chain:
      description: The chain.
      type: str
    removed:
      description: The rules removed, as iptables-save writes them.
      type: list
      elements: str
    inserted:
      description: The rules inserted (C(-I CHAIN 1 ...) first in the chain, C(-A CHAIN ...) appended).
      type: list
      elements: str
  sample:
    - {ip_version: ipv4, backend: nft, path: null, table: filter, chain: FORWARD,
       removed: ["-A FORWARD -j REJECT --reject-with icmp-host-prohibited"], inserted: []}
    - {ip_version: ipv4, backend: null, path: /etc/sysconfig/iptables, table: filter, chain: FORWARD,
       removed: ["-A FORWARD -j REJECT --reject-with icmp-host-prohibited"], inserted: []}
backends:
  description: Per IP version, the iptables backends found on the host.
  returned: always
  type: dict
  sample: {ipv4: [nft, legacy]}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewall import run


def main():
    module = AnsibleModule(
        argument_spec={
            "chain": {"type": "str", "default": "FORWARD"},
            "table": {"type": "str", "default": "filter"},
            "reject_with": {"type": "str", "default": "icmp-host-prohibited"},
            "state": {"type": "str", "choices": ["absent", "present"], "default": "absent"},
            "accept_bridged": {"type": "bool", "default": False},
            "persist": {"type": "bool", "default": True},
            "rules_file": {"type": "path"},
            "rules_file_ipv6": {"type": "path", "default": "/etc/sysconfig/ip6tables"},
            "ip_version": {"type": "str", "choices": ["ipv4", "ipv6", "both"], "default": "ipv4"},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

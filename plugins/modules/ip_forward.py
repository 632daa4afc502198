#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ip_forward
short_description: Set IP forwarding and bridge netfilter sysctls, now and at boot
version_added: 0.1.0
description:
  - Sets C(net.ipv4.ip_forward), C(net.ipv6.conf.all.forwarding) and the
    C(net.bridge.bridge-nf-call-iptables), C(-ip6tables) and C(-arptables)
    sysctls at runtime through C(/proc/sys), and persists them in a sysctl.d
    drop-in file written atomically.
  - Reads the whole systemd-sysctl configuration (C(/etc/sysctl.d),
    C(/run/sysctl.d), C(/usr/local/lib/sysctl.d), C(/usr/lib/sysctl.d),
    C(/lib/sysctl.d), then C(/etc/sysctl.conf)) in the order systemd-sysctl
    applies it. When another file would override a value at boot, the module
    warns, names the file in RV(overridden_by), and with O(fix_overrides=true)
    comments the conflicting line out.
  - Reports the runtime and the persistent (boot) state separately.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the runtime values and every file written, before and after.
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  ipv4:
    description:
      - Whether the host forwards IPv4 (C(net.ipv4.ip_forward)).
    type: bool
    default: true
  ipv6:
    description:
      - Whether the host forwards IPv6 (C(net.ipv6.conf.all.forwarding)).
      - Omit to leave it as it is.
    type: bool
  bridge_nf_call:
    description:
      - Whether bridged frames pass through iptables, ip6tables and arptables
        (C(net.bridge.bridge-nf-call-iptables), C(-ip6tables), C(-arptables)).
        V(false) lets bridged guests bypass the host firewall.
      - Omit to leave them as they are.
      - These sysctls exist only while the br_netfilter module is loaded.
        Without it, V(true) fails and V(false) only warns, because bridged
        traffic then bypasses iptables anyway.
    type: bool
  persist:
    description:
      - Also write the values to O(sysctl_file), so that systemd-sysctl applies them at boot.
      - With V(false) only the runtime values change.
    type: bool
    default: true
  sysctl_file:
    description:
      - The drop-in file that holds the persistent values. Lines of other keys
        and comments in it are kept.
      - Use C(/etc/sysctl.conf) on hosts without systemd-sysctl (EL6).
      - The path is normalised (C(/./), C(/../), C(//)). A hidden file name (starting with C(.)) is refused,
        because systemd-sysctl skips hidden files.
      - A symbolic link, such as C(/etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf), is written through; the link
        stays.
    type: path
    default: /etc/sysctl.d/90-kvmhost-bridging.conf
  fix_overrides:
    description:
      - Comment out the lines of files applied after O(sysctl_file) that set
        one of these keys to another value.
      - Files under C(/etc) are edited in place. A vendor file (C(/run),
        C(/usr/lib)) is not changed; a copy with the line commented out is
        written to C(/etc/sysctl.d) under the same name, which masks it.
      - Needs O(persist=true).
    type: bool
    default: false
notes:
  - Does not load br_netfilter; load it with community.general.modprobe first when O(bridge_nf_call=true).
seealso:
  - module: kvmhost.bridging.reject_rule
  - name: sysctl.d(5)
    description: Precedence of the sysctl.d directories and files.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html
"""

EXAMPLES = r"""
- name: Route between the VMs' networks, keep bridged frames out of iptables
  kvmhost.bridging.ip_forward:
    ipv4: true
    ipv6: true
    bridge_nf_call: false

- name: Same, and comment out a later sysctl.d line that would undo it at boot
  kvmhost.bridging.ip_forward:
    ipv4: true
    fix_overrides: true

- name: Runtime only
  kvmhost.bridging.ip_forward:
    ipv4: true
    persist: false
"""

RETURN = r"""
runtime:
  description:
    - Per sysctl, its runtime value before and after (planned in check mode).
    - V(null) when the sysctl does not exist (br_netfilter not loaded, IPv6 disabled).
  returned: always
  type: dict
  sample:
    net.ipv4.ip_forward: {before: "0", after: "1"}
persistent:
  description:
    - Per sysctl, the value systemd-sysctl sets at boot before and after this
      task, and the file that sets it after (V(null) when no file does).
  returned: always
  type: dict
  sample:
    net.ipv4.ip_forward: {before: "0", after: "1", source: /etc/sysctl.d/90-kvmhost-bridging.conf}
overridden_by:
  description:
    - Per sysctl whose boot value is not ours, the file that wins instead.
    - Empty when every value holds at boot.
  returned: always
  type: dict
  sample:
    net.ipv4.ip_forward: /etc/sysctl.d/99-local.conf
fixed_overrides:
  description: The lines that O(fix_overrides) commented out (would comment out in check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /etc/sysctl.d/99-local.conf, written: /etc/sysctl.d/99-local.conf, line: 3,
       text: net.ipv4.ip_forward = 0, key: net.ipv4.ip_forward}
sysctl_file:
  description: The drop-in file, or V(null) with O(persist=false).
  returned: always
  type: str
  sample: /etc/sysctl.d/90-kvmhost-bridging.conf
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._sysctl import run


def main():
    module = AnsibleModule(
        argument_spec={
            "ipv4": {"type": "bool", "default": True},
            "ipv6": {"type": "bool"},
            "bridge_nf_call": {"type": "bool"},
            "persist": {"type": "bool", "default": True},
            "sysctl_file": {"type": "path", "default": "/etc/sysctl.d/90-kvmhost-bridging.conf"},
            "fix_overrides": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

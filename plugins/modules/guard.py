#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: guard
short_description: Commit-confirmed guard for network changes made over SSH
version_added: 0.1.0
description:
  - Protects a network change made over the network it changes, as C(commit confirmed) does on Junos.
    The previous state comes back by itself unless a new connection from the controller confirms the change
    within O(timeout) seconds.
  - V(arm) saves the content of O(files) (or that they do not exist) and a snapshot of the runtime network state
    (links, bridge membership, link states, MACs, MTUs, bridge options, addresses and routes) in
    C(<state_dir>/guard-<id>.net<inode>.json); the inode names the network namespace, so that namespaces that
    share C(/run) keep their guards apart.
  - V(arm) also starts the watcher, detached on the host itself (a double fork into its own session, and where
    systemd runs, a transient scope unit C(kvmhost-bridging-guard-<id>-<arming>.scope)), and returns once it runs.
    If nothing confirms within O(timeout) seconds, the watcher restores the runtime state and the files (atomically).
    It needs neither C(async) nor C(async_status), and nothing of the connection that armed it, so the guard works
    with any strategy (linear, free, Mitogen's) and over C(ssh), C(paramiko_ssh) or Mitogen's SSH.
  - V(start) waits until the watcher runs and starts its countdown, for a guard armed with O(start_within). Changes
    made between V(arm) and V(start), such as writing files, are restored by a rollback too, but do not count
    against O(timeout).
  - "V(confirm) confirms the change. Run it after C(meta: reset_connection), so that it comes over a fresh
    connection, which proves the host is still reachable. It waits for the watcher to finish and returns the outcome
    in RV(outcome)."
  - V(rollback) restores the saved state at once, for example after a task of the change has failed.
  - V(status) reports whether the guard is armed and watched, the time left, and the last outcome (RV(last)); with
    O(wait), it first waits for a decision being carried out to finish, so that a play that lost the connection reads
    the outcome once the host answers again.
  - The guard needs a connection that reaches the host over its network. With a connection that does not (C(local),
    containers, chroots) or that runs no Python modules (C(network_cli), C(httpapi), C(netconf)), V(arm) fails with a
    message that says so, before anything is saved, since a confirmation over it would prove nothing.
  - Exactly one decision is taken for each arming, whichever comes first, so a confirmation that comes after the
    watcher has begun to roll back fails with a message that says so.
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
  - kvmhost.bridging.attributes.PYROUTE2
attributes:
  check_mode:
    support: full
    details: In check mode nothing is saved, watched, confirmed or restored.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: V(confirm) and V(status) are idempotent; V(arm) replaces an earlier arming whose watcher is gone.
  platform:
    platforms: linux
options:
  action:
    description:
      - What to do, see the description.
    type: str
    required: true
    choices: [arm, start, confirm, rollback, status]
  id:
    description:
      - Names the guarded change, so that guards of different changes do not meet.
      - Letters, digits, V(_), V(.) and V(-), at most 128, starting with a letter or digit.
    type: str
    required: true
  timeout:
    description:
      - With V(arm), the seconds the watcher waits for a confirmation, counted from its start, or from
        V(start) with O(start_within).
      - At most V(86400) (a day).
    type: int
    default: 60
  start_within:
    description:
      - With V(arm), V(0) makes the watcher count O(timeout) from its own start.
      - A positive value makes it count from the V(start) action instead, which must come within this many seconds
        of the watcher's start; if it does not, the watcher rolls back what was done so far and ends.
      - At most V(86400) (a day).
    type: int
    default: 0
  files:
    description:
      - With V(arm), the absolute paths of the files that the change may write, create or remove.
      - A symbolic link is restored through, like every writer of this collection writes through one. The file it
        names gets its content back, and the link stays.
    type: list
    elements: path
    default: []
  runtime:
    description:
      - With V(arm), whether to save (and on rollback restore) the runtime network state.
    type: bool
    default: true
  interfaces:
    description:
      - With V(arm) and O(runtime=true), the interfaces whose runtime state a rollback restores, for example
        V([eth0, breth0]). The ports of those that are bridges are included.
      - Empty means every interface. A bridge that did not exist when the guard was armed is deleted; other new
        interfaces (such as a guest's tap) are left alone.
    type: list
    elements: str
    default: []
  description:
    description:
      - With V(arm), what the change does, for the messages, for example V(bridging eth0 into breth0).
    type: str
    default: the guarded change
  reason:
    description:
      - With V(rollback), why, for the messages.
    type: str
  wait:
    description:
      - With V(arm), how many seconds to wait for the watcher to run before the action fails (and withdraws the arming).
      - With V(confirm), how many seconds to wait for the watcher to finish after the confirmation.
      - With V(start), how many seconds to wait for the watcher to run before the action fails.
      - With V(status), how many seconds to wait for the watcher of an armed guard to start, or for a decision taken
        to be carried out. A guard that is not armed, or armed and watched with nothing decided, is reported at once.
      - At most V(86400) (a day).
    type: int
    default: 10
  state_dir:
    description:
      - Where the guard keeps its state. A directory on a tmpfs (it must not survive a reboot).
      - It must be owned by the user the guard runs as and writable by nobody else (whoever can write there could
        decide the guard's outcome); the guard refuses any other directory.
    type: path
    default: /run/kvmhost-bridging
notes:
  - The state directory holds the saved files; it is created with mode 0700 and the state files with mode 0600.
  - A reboot during the guarded change loses the guard (its state lives in C(/run)); the files written by the change
    then apply at boot.
seealso:
  - module: kvmhost.bridging.bridge
  - module: kvmhost.bridging.ifcfg
"""

EXAMPLES = r"""
- name: Arm the guard; its watcher starts detached on the host
  kvmhost.bridging.guard:
    action: arm
    id: host-bridge
    timeout: 60
    files:
      - /etc/sysconfig/network-scripts/ifcfg-eth0
      - /etc/sysconfig/network-scripts/ifcfg-breth0
    interfaces: [eth0, breth0]
    description: bridging eth0 into breth0

- name: Bridge eth0
  kvmhost.bridging.bridge:
    name: breth0
    ports: [eth0]

- name: Open a fresh connection
  ansible.builtin.meta: reset_connection

- name: Confirm over it; the watcher's outcome comes back with the confirmation
  kvmhost.bridging.guard:
    action: confirm
    id: host-bridge
  register: guard_confirm

- name: Show the outcome
  ansible.builtin.debug:
    msg: "{{ guard_confirm.outcome.msg }}"
"""

RETURN = r"""
id:
  description: The guard's id.
  returned: always
  type: str
  sample: host-bridge
state_file:
  description: Where the armed state is kept.
  returned: with O(action=arm)
  type: str
  sample: /run/kvmhost-bridging/guard-host-bridge.net4026531840.json
files:
  description: The files saved, and whether each existed.
  returned: with O(action=arm)
  type: list
  elements: dict
  sample: [{path: /etc/sysconfig/network-scripts/ifcfg-breth0, exists: false}]
confirmed:
  description: Whether the change was confirmed.
  returned: with O(action=confirm) and O(action=rollback)
  type: bool
  sample: true
rolled_back:
  description: Whether the previous state was restored.
  returned: with O(action=rollback)
  type: bool
  sample: false
reason:
  description: Why the decision was taken, for example V(no confirmation within 60s).
  returned: with O(action=rollback)
  type: str
decided_by:
  description: Who took the decision, V(confirm), V(watcher) or V(rollback action).
  returned: with O(action=rollback)
  type: str
finished_at:
  description: When the change was confirmed or restored (local time, ISO 8601).
  returned: with O(action=rollback)
  type: str
  sample: "2026-03-01T12:00:00+00:00"
restored_files:
  description: What the rollback did to each file, V(restored), V(recreated), V(removed) or V(unchanged).
  returned: when rolled back
  type: list
  elements: dict
  sample: [{path: /etc/sysconfig/network-scripts/ifcfg-eth0, action: restored}]
restored_runtime:
  description: The runtime steps of the rollback, and the differences to the saved state that are left.
  returned: when rolled back with O(runtime=true)
  type: dict
  sample: {steps: ["delete bridge breth0, which did not exist", "add 198.18.0.2/30 to eth0"], differences: []}
errors:
  description: Parts of the rollback that failed.
  returned: when rolled back
  type: list
  elements: str
since_arm:
  description: Seconds from the arming to the confirmation.
  returned: with O(action=confirm)
  type: float
  sample: 3.2
remaining:
  description: Seconds left before the watcher's deadline.
  returned: with O(action=start), O(action=confirm), and O(action=status) once the countdown runs
  type: float
  sample: 56.8
armed:
  description: Whether the guard is armed.
  returned: with O(action=status)
  type: bool
watching:
  description: Whether a watcher runs for the guard.
  returned: with O(action=arm), O(action=status) and O(action=start)
  type: bool
watcher:
  description: The PID of the watcher that O(action=arm) started.
  returned: with O(action=arm) outside check mode
  type: int
  sample: 4242
scope:
  description: The transient systemd scope unit the watcher runs in, or V(null) where systemd does not run.
  returned: with O(action=arm) outside check mode
  type: str
  sample: kvmhost-bridging-guard-host-bridge-5f2c9a1b3e4d6f70.scope
outcome:
  description:
    - The watcher's outcome of the confirmed change, as RV(last) of O(action=status), or V(null) when the watcher
      did not finish within O(wait).
  returned: with O(action=confirm) outside check mode
  type: dict
  sample: {confirmed: true, rolled_back: false, decided_by: confirm, msg: Confirmed bridging eth0 into breth0.}
last:
  description: The outcome of the guard's last change, as RV(confirmed), RV(rolled_back), RV(reason) and so on.
  returned: with O(action=status)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils import _guard, _guard_state
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import fail_on_error
from ansible_collections.kvmhost.bridging.plugins.module_utils._pyroute2_dep import assert_pyroute2

ARGUMENT_SPEC = {
    "action": {"type": "str", "required": True, "choices": ["arm", "start", "confirm", "rollback", "status"]},
    "id": {"type": "str", "required": True},
    "timeout": {"type": "int", "default": 60},
    "start_within": {"type": "int", "default": 0},
    "files": {"type": "list", "elements": "path", "default": []},
    "runtime": {"type": "bool", "default": True},
    "interfaces": {"type": "list", "elements": "str", "default": []},
    "description": {"type": "str", "default": "the guarded change"},
    "reason": {"type": "str"},
    "wait": {"type": "int", "default": 10},
    "state_dir": {"type": "path", "default": _guard_state.STATE_DIR},
}


def run(module):
    params = module.params
    action = params["action"]
    _guard_state.check_seconds("wait", params["wait"], 0)
    paths = _guard_state.Paths(params["state_dir"], params["id"], _guard_state.netns_scope())
    runtime = _guard.NetlinkRuntime(params["interfaces"])
    guard = _guard.Guard(module, paths, runtime)
    if action == "arm":
        if params["runtime"]:
            assert_pyroute2(module)  # imported now: the detached watcher restores with it
        result = guard.arm(params["timeout"], params["files"], params["description"], params["runtime"], module.check_mode, params["start_within"])
        if module.check_mode:
            return result
        started = guard.start_watcher(params["wait"], scope=_guard.busctl_scope(module))
        result["warnings"].extend(started.pop("warnings"))
        result.update(started, watching=True)
        return result
    if action == "rollback":
        assert_pyroute2(module)
        return guard.rollback(params["reason"], module.check_mode)
    if action == "start":
        return guard.start(params["wait"], module.check_mode)
    if action == "confirm":
        return guard.confirm(params["wait"], module.check_mode)
    return guard.status(params["wait"])


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = fail_on_error(module, run, module)
    warnings = result.pop("warnings", [])
    for warning in warnings:
        module.warn(warning)
    if result.get("rolled_back") and result.get("errors"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

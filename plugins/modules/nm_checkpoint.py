#!/usr/bin/python
# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nm_checkpoint
short_description: Commit-confirmed network changes with NetworkManager checkpoints
version_added: 0.2.0
description:
  - Creates, confirms (destroys), rolls back and lists NetworkManager checkpoints, over D-Bus with C(busctl) (stock on
    every EL8, EL9 and EL10 host; no Python D-Bus binding and no pip package on the managed host).
  - A checkpoint records the devices and their profiles. When it is not destroyed within its rollback timeout,
    NetworkManager itself restores the devices and the profiles, on disk too, so a change that cuts the connection
    undoes itself.
  - With O(delete_new_connections) and O(disconnect_new_devices) (the defaults), a rollback also deletes the profiles
    created after the checkpoint (a new bridge's) and disconnects the devices that appeared (the bridge).
author:
  - kvmhost.bridging contributors (@kvmhost)
extends_documentation_fragment:
  - kvmhost.bridging.attributes
options:
  action:
    description:
      - V(create) takes a checkpoint and returns its RV(checkpoint) path.
      - V(destroy) confirms the change; the checkpoint goes and nothing is rolled back. Fails when the checkpoint no longer
        exists (NetworkManager already rolled it back), with RV(checkpoint_gone=true).
      - V(rollback) makes NetworkManager restore the checkpoint at once and returns what it restored.
      - V(adjust) restarts the countdown of O(checkpoint), O(timeout) seconds from now (a checkpoint taken with a long
        timeout before slow preparations, shortened just before the risky step).
      - V(status) lists the host's checkpoints and changes nothing.
    type: str
    choices: [create, destroy, rollback, adjust, status]
    default: status
  devices:
    description:
      - With O(action=create), the interface names the checkpoint covers; empty means every device.
    type: list
    elements: str
    default: []
  timeout:
    description:
      - With O(action=create), seconds after which NetworkManager rolls back by itself; V(0) means never.
      - With O(action=adjust), the new timeout, counted from now.
    type: int
    default: 60
  delete_new_connections:
    description: With O(action=create), a rollback deletes the profiles created after the checkpoint.
    type: bool
    default: true
  disconnect_new_devices:
    description: With O(action=create), a rollback disconnects the devices that appeared after the checkpoint.
    type: bool
    default: true
  checkpoint:
    description:
      - With O(action=destroy), O(action=rollback) or O(action=adjust), the checkpoint's D-Bus path, as
        O(action=create) returned it.
    type: str
  what:
    description:
      - The guarded change in words (V(bridging eth0 into breth0)). When given, O(action=rollback) fails after the
        rollback, and O(action=destroy) of a checkpoint that NetworkManager already rolled back fails, each with a
        message that says what failed and what NetworkManager restored.
    type: str
  failure:
    description: With O(what) and O(action=rollback), the step that failed and its message.
    type: str
  label:
    description: With O(what), the start of the message, such as V(host_bridge - host1).
    type: str
attributes:
  check_mode:
    support: full
    details: In check mode V(create), V(destroy) and V(rollback) report what they would do and do nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: V(status) never changes anything; V(create) takes a new checkpoint each time; a second V(destroy) or
      V(rollback) of the same checkpoint fails, because it is gone.
  platform:
    platforms: posix
requirements:
  - NetworkManager running on the managed host, and C(busctl) (systemd)
seealso:
  - module: kvmhost.bridging.network_backend_info
  - name: NetworkManager D-Bus API, CheckpointCreate
    description: The checkpoint methods and flags.
    link: https://networkmanager.dev/docs/api/latest/gdbus-org.freedesktop.NetworkManager.html
"""

EXAMPLES = r"""
- name: Take a checkpoint of eth0 that NetworkManager rolls back after 60 seconds
  kvmhost.bridging.nm_checkpoint:
    action: create
    devices: [eth0]
    timeout: 60
  register: checkpoint

# ... change the profiles and activate them ...

- name: Confirm over a fresh connection
  ansible.builtin.meta: reset_connection

- name: Destroy the checkpoint, which keeps the change
  kvmhost.bridging.nm_checkpoint:
    action: destroy
    checkpoint: "{{ checkpoint.checkpoint }}"
"""

RETURN = r"""
checkpoint:
  description: The checkpoint's D-Bus path (created, destroyed or rolled back).
  returned: with action create, destroy, rollback and adjust
  type: str
  sample: /org/freedesktop/NetworkManager/Checkpoint/1
flags:
  description: The CheckpointCreate flags used (2 delete new connections, 4 disconnect new devices).
  returned: with action create
  type: int
  sample: 6
restored:
  description: With action rollback, each device and NetworkManager's result for it.
  returned: with action rollback
  type: dict
  sample: {eth0: restored, breth0: restored}
checkpoints:
  description: The host's checkpoints, each with its path, devices, rollback timeout and creation time.
  returned: with action status
  type: list
  elements: dict
  sample: [{path: /org/freedesktop/NetworkManager/Checkpoint/1, devices: [eth0], rollback_timeout: 60, created: 123456}]
checkpoint_gone:
  description: On failure of destroy or rollback, true when the checkpoint no longer existed (already rolled back).
  returned: on failure
  type: bool
  sample: true
msg:
  description: What was done, in words.
  returned: always
  type: str
  sample: NetworkManager rolled back /org/freedesktop/NetworkManager/Checkpoint/1 (eth0 restored, breth0 restored)
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError, run_and_exit
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm import (
    Bus,
    Checkpoints,
    checkpoint_flags,
    rollback_restored,
    rollback_summary,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._nm_bridge import outcome_message


def run(module):
    params = module.params
    busctl = module.get_bin_path("busctl")
    if not busctl:
        raise ModuleError("busctl (systemd) is not installed on this host; nm_checkpoint talks to NetworkManager with it.")
    checkpoints = Checkpoints(Bus(module.run_command, busctl))
    checkpoints.require_running()
    action = params["action"]
    if action == "status":
        return {"changed": False, "checkpoints": checkpoints.list(), "msg": "listed the checkpoints"}
    if action == "create":
        flags = checkpoint_flags(params["delete_new_connections"], params["disconnect_new_devices"])
        what = ", ".join(params["devices"]) or "all devices"
        if module.check_mode:
            for name in params["devices"]:
                checkpoints.device_path(name)  # an unknown device fails in check mode too
            return {"changed": True, "checkpoint": "", "flags": flags, "msg": "would take a checkpoint of %s" % what}
        path = checkpoints.create(params["devices"], params["timeout"], flags)
        return {"changed": True, "checkpoint": path, "flags": flags, "msg": "took checkpoint %s of %s (rollback after %ss)" % (path, what, params["timeout"])}
    path = params["checkpoint"]
    if not path:
        raise ModuleError("action=%s needs checkpoint: the path that action=create returned." % action)
    if action == "adjust":
        checkpoints.require(path)
        if not module.check_mode:
            checkpoints.adjust(path, params["timeout"])
        return {"changed": True, "checkpoint": path, "msg": "NetworkManager rolls back %s in %ss unless it is confirmed" % (path, params["timeout"])}
    if action == "destroy":
        if module.check_mode:
            checkpoints.require(path)
            return {"changed": True, "checkpoint": path, "msg": "would confirm %s" % path}
        try:
            checkpoints.destroy(path)
        except ModuleError as exc:
            if params["what"] and exc.result.get("checkpoint_gone"):
                raise ModuleError(
                    outcome_message(params["label"], params["what"], checkpoint_gone=True, timeout=params["timeout"]), checkpoint=path, checkpoint_gone=True
                ) from None
            raise
        return {"changed": True, "checkpoint": path, "msg": "confirmed the change: destroyed %s" % path}
    if module.check_mode:
        checkpoints.require(path)
        return {"changed": True, "checkpoint": path, "restored": {}, "msg": "would roll back %s" % path}
    results, names = checkpoints.rollback(path)
    restored = rollback_restored(results, names)
    if params["what"]:
        raise ModuleError(
            outcome_message(params["label"], params["what"], failure=params["failure"], restored=restored), changed=True, checkpoint=path, restored=restored
        )
    return {
        "changed": True,
        "checkpoint": path,
        "restored": restored,
        "msg": "NetworkManager rolled back %s (%s)" % (path, rollback_summary(restored) or "no device"),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "choices": ["create", "destroy", "rollback", "adjust", "status"], "default": "status"},
            "devices": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 60},
            "delete_new_connections": {"type": "bool", "default": True},
            "disconnect_new_devices": {"type": "bool", "default": True},
            "checkpoint": {"type": "str"},
            "what": {"type": "str"},
            "failure": {"type": "str"},
            "label": {"type": "str"},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run, module)


if __name__ == "__main__":
    main()

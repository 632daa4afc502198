"""The guard module over real SSH, plain and under Mitogen: its watcher outlives the connection that armed it.

The role's two proofs (bridging the SSH NIC and confirming; a wrong address rolled back by the host itself)
are in test_roles_host_bridge.py, under both configurations too.
"""

from __future__ import annotations

import json
import time

STATE_DIR = "/run/kvmhost-bridging-test"


def _stat(host, pid):
    """(state, ppid, session id) of ``pid`` on the host, or None when it is gone."""
    text = host.read_file("/proc/%d/stat" % pid)
    if text is None:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[3])


def test_the_watcher_outlives_the_connection_that_armed_it(host, any_ansible):
    path = "/etc/kvmb-guard-test.conf"
    host.write_file(path, "before\n")
    armed = any_ansible.module(
        host, "kvmhost.bridging.guard", {"action": "arm", "id": "t1", "timeout": 600, "files": [path], "runtime": False, "state_dir": STATE_DIR}
    )
    assert not armed.get("failed"), armed
    assert armed["watching"] is True and armed["scope"] is None
    pid = armed["watcher"]
    # The ansible-playbook run that armed the guard has ended, and with it its SSH session (or Mitogen's
    # interpreter on the host): the watcher runs on, in a session of its own, a child of no Ansible process.
    state, ppid, sid = _stat(host, pid)
    assert state not in ("Z", "X")
    assert sid not in (pid, ppid) and sid > 0
    parent = host.read_file("/proc/%d/cmdline" % ppid) or ""
    assert "sshd" not in parent and "ansible" not in parent.lower() and "mitogen" not in parent.lower(), parent
    status = any_ansible.module(host, "kvmhost.bridging.guard", {"action": "status", "id": "t1", "state_dir": STATE_DIR})
    assert status["armed"] is True and status["watching"] is True

    host.write_file(path, "after\n")
    confirmed = any_ansible.module(host, "kvmhost.bridging.guard", {"action": "confirm", "id": "t1", "state_dir": STATE_DIR})
    assert confirmed["confirmed"] is True and confirmed["watcher_done"] is True
    outcome = confirmed["outcome"]
    assert outcome["confirmed"] is True and outcome["rolled_back"] is False and outcome["decided_by"] == "confirm"
    assert host.read_file(path) == "after\n"
    state = _stat(host, pid)
    assert state is None or state[0] in ("Z", "X")  # the watcher has ended with the confirmation
    assert (
        json.loads(host.read_file(STATE_DIR + "/guard-t1.net%s.result.json" % host.run(["stat", "-L", "-c", "%i", "/proc/self/ns/net"]).stdout.strip()))[
            "confirmed"
        ]
        is True
    )


def test_the_watcher_rolls_back_by_itself_after_its_connection_ended(host, any_ansible):
    path = "/etc/kvmb-guard-test.conf"
    host.write_file(path, "before\n")
    armed = any_ansible.module(
        host, "kvmhost.bridging.guard", {"action": "arm", "id": "t2", "timeout": 10, "files": [path], "runtime": False, "state_dir": STATE_DIR}
    )
    assert armed["watching"] is True, armed
    host.write_file(path, "after\n")
    # status reports an armed, watched guard with nothing decided at once: ask again until the watcher's
    # countdown has run out and its decision is carried out. The countdown is 10 s, not less: the file above must be
    # written before it runs out, and on a loaded machine one SSH round trip alone has taken over 2 s.
    args = {"action": "status", "id": "t2", "state_dir": STATE_DIR, "wait": 120}
    give_up = time.monotonic() + 90
    status = any_ansible.module(host, "kvmhost.bridging.guard", args)
    while status["last"] is None and time.monotonic() < give_up:
        time.sleep(0.5)
        status = any_ansible.module(host, "kvmhost.bridging.guard", args)
    last = status["last"]
    assert last is not None, status
    assert last["rolled_back"] is True and last["decided_by"] == "watcher" and last["reason"] == "no confirmation within 10s"
    assert host.read_file(path) == "before\n"


def test_arming_over_a_connection_that_bypasses_the_network_is_refused(host, any_ansible, tmp_path):
    # The controller's own connection ("local"; Mitogen's mitogen_local under mitogen_linear): a confirmation over it
    # would prove nothing. The action plugin refuses before any module runs, so nothing happens on this machine.
    state_dir = tmp_path / "guard"
    play = [
        {
            "hosts": host.name,
            "gather_facts": False,
            "vars": {"ansible_connection": "local"},
            "tasks": [
                {
                    "name": "under test",
                    "kvmhost.bridging.guard": {"action": "arm", "id": "t3", "runtime": False, "state_dir": str(state_dir)},
                    "ignore_errors": True,
                }
            ],
        }
    ]
    result = any_ansible.playbook(json.dumps(play) + "\n")
    found = result.for_host(host, "under test")[0]
    assert found["failed"] is True
    assert found["msg"].startswith("The guard cannot protect a change made over the 'local' connection")
    assert "host_bridge_rollback_timeout=0" in found["msg"]
    assert not state_dir.exists()

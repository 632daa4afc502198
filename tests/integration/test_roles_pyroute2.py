"""The shared pyroute2 step (internal role kvmhost.bridging.pyroute2) as isolated_bridge and vm_taps include it."""

from __future__ import annotations

import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def links(host):
    return sorted(r["ifname"] for r in json.loads(host.run(["ip", "-j", "link", "show"]).stdout))


def failed_messages(result, host):
    return "\n".join(r["result"].get("msg", "") for r in result.results if r["host"] == host.name and r["status"] == "failed")


@pytest.mark.parametrize(("playbook", "extra"), [
    ("vm_taps.yml", {"vm_taps_count": 2, "vm_taps_install_pyroute2": False}),
    ("isolated_bridge.yml", {"isolated_bridge_name": "isol7", "isolated_bridge_install_pyroute2": False}),
])  # fmt: skip
def test_without_pyroute2_the_role_names_its_own_option_and_changes_nothing(host, ansible, playbook, extra):
    """This machine's /usr/bin/python3 has no pyroute2; with the install off, the role fails naming its own variable."""
    option = next(name for name in extra if name.endswith("_install_pyroute2"))
    before = links(host)
    result = ansible.playbook(os.path.join(ROOT, "playbooks", playbook), hosts=[host],
                              extra_vars=dict(extra, ansible_python_interpreter="/usr/bin/python3"))  # fmt: skip
    assert result.rc != 0
    assert ("The host's Python (/usr/bin/python3) cannot import pyroute2 and %s is false. Install python3-pyroute2 (EPEL on EL8),"
            " or set %s: true." % (option, option)) in failed_messages(result, host)  # fmt: skip
    assert links(host) == before

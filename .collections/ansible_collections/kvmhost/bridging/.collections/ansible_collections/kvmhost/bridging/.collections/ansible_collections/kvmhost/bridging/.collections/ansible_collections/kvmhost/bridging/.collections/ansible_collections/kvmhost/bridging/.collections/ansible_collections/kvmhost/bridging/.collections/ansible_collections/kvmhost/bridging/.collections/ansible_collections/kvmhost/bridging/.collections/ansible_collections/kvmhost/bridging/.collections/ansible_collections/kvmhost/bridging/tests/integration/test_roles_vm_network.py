"""The vm_network role on lab hosts, against libvirt's test driver (see test_vm_interface for how the node files work)."""

from __future__ import annotations

import os

from test_vm_interface import add_bridge, assert_valid, bridge_iface, config_after, domain, interfaces, shut_off, write_node

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM_NETWORK = os.path.join(ROOT, "playbooks", "vm_network.yml")
TASK = "Put each domain's interface on its bridge"

WEB01 = "3deda32b-04b6-47d0-b36a-b09037689f42"
DB01 = "5cd044d1-9846-4d92-8bb2-850626374163"
APP01 = "9a1c9c5e-2f7b-4c47-9b4e-1d0b7c0e0c01"


def task_result(played, host):
    found = [r for r in played.results if r["host"] == host.name and r["task"].endswith(TASK)]
    return found[-1] if found else None


def test_puts_the_domains_on_their_bridges_then_changes_nothing(host, ansible):
    for bridge in ("breth0", "brisol", "brold"):
        add_bridge(host, bridge)
    uri = write_node(
        host,
        domain("web01", WEB01),
        domain("db01", DB01, bridge_iface("52:54:00:bb:00:01", "brold", "virtio")),
        domain("app01", APP01, running=True),
    )
    extra = {
        "vm_network_uri": uri,
        "vm_network_interfaces": [
            {"domain": "web01", "bridge": "breth0", "mac": "52:54:00:12:34:56"},
            {"domain": "db01", "bridge": "brisol", "mac": "52:54:00:bb:00:01", "model": "e1000"},
            # running, on a driver that cannot hot plug: the persistent definition only
            {"domain": "app01", "bridge": "breth0", "live": False},
        ],
    }
    first = ansible.playbook(VM_NETWORK, hosts=[host], extra_vars=extra, diff=True)
    assert first.rc == 0, first.output
    record = task_result(first, host)
    assert record["status"] == "ok" and record["result"]["changed"] is True
    web01, db01, app01 = record["result"]["results"]
    assert [c["action"] for c in web01["changes"]] == ["add"]
    assert interfaces(config_after(web01)) == [("bridge", "52:54:00:12:34:56", "breth0", "virtio")]
    assert [(c["action"], c["changed"]) for c in db01["changes"]] == [("update", ["bridge", "model"])]
    assert interfaces(config_after(db01)) == [("bridge", "52:54:00:bb:00:01", "brisol", "e1000")]
    assert app01["domain"]["active"] is True and [c["view"] for c in app01["changes"]] == ["config"]
    assert app01["interface"]["bridge"] == "breth0" and app01["interface"]["mac"].startswith("52:54:00:")
    for item in (web01, db01, app01):
        assert_valid(config_after(item))
    assert "web01 (config)" in first.output  # the diff is shown

    # Again, on the domains as libvirt defined them: nothing to change.
    after = write_node(host, *(shut_off(config_after(item)) for item in (web01, db01, app01)), name="after.xml")
    second = ansible.playbook(VM_NETWORK, hosts=[host], extra_vars=dict(extra, vm_network_uri=after))
    assert second.rc == 0, second.output
    assert second.stats[host.name]["changed"] == 0
    assert [r["changes"] for r in task_result(second, host)["result"]["results"]] == [[], [], []]

    # state absent by default for every entry
    gone = ansible.playbook(VM_NETWORK, hosts=[host], extra_vars=dict(extra, vm_network_uri=after, vm_network_state="absent"), diff=True)
    assert gone.rc == 0, gone.output
    assert [interfaces(config_after(item)) for item in task_result(gone, host)["result"]["results"]] == [[], [], []]


def test_an_empty_list_does_nothing(host, ansible):
    played = ansible.playbook(VM_NETWORK, hosts=[host])
    assert played.rc == 0, played.output
    assert played.stats[host.name]["changed"] == 0
    assert task_result(played, host)["status"] == "skipped"


def test_an_entry_without_a_bridge_is_refused_before_anything_runs(host, ansible):
    played = ansible.playbook(VM_NETWORK, hosts=[host], extra_vars={"vm_network_interfaces": [{"domain": "web01"}]})
    assert played.rc != 0
    assert "missing required arguments: bridge" in played.output, played.output
    assert task_result(played, host) is None


def test_without_libvirt_python_it_says_what_to_install(host, ansible):
    """Debian's own python3 has no libvirt-python; with installing switched off the role stops and says what to do."""
    add_bridge(host, "breth0")
    uri = write_node(host, domain("web01", WEB01))
    extra = {
        "vm_network_uri": uri,
        "vm_network_interfaces": [{"domain": "web01", "bridge": "breth0"}],
        "vm_network_install_libvirt": False,
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    played = ansible.playbook(VM_NETWORK, hosts=[host], extra_vars=extra)
    assert played.rc != 0
    probe = [r for r in played.results if r["task"].endswith("Check whether the host's Python imports libvirt")]
    assert probe and probe[0]["result"]["rc"] != 0
    failed = [r for r in played.results if r["task"].endswith("Fail without libvirt-python")]
    assert failed and failed[0]["status"] == "failed"
    assert "cannot import libvirt" in failed[0]["result"]["msg"] and "python3-libvirt" in failed[0]["result"]["msg"]
    assert task_result(played, host) is None

    # with the venv's Python, which has it, the probe passes and nothing is installed
    played = ansible.playbook(VM_NETWORK, hosts=[host], extra_vars={k: v for k, v in extra.items() if k != "ansible_python_interpreter"})
    assert played.rc == 0, played.output
    install = [r for r in played.results if r["task"].endswith("Install python3-libvirt")]
    assert install and install[0]["status"] == "skipped"

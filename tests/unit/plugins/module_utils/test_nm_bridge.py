"""_nm_bridge: nmcli's terse output, the plan of the two profiles, and the outcome messages."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _nm_bridge
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

MAC = "8A:6E:06:62:FB:A0"
ETH0_UUID = "d7462633-5b31-5524-a96a-43dd63299179"
BR_UUID = "e1d4aab5-2030-45c6-9dd2-d1dc865da63f"


def details(**over):
    base = dict.fromkeys(_nm_bridge.PROFILE_FIELDS, "")
    base.update({"ipv4.never-default": "no", "ipv6.method": "disabled"})
    base.update({key.replace("_", "."): value for key, value in over.items()})
    return base


def fresh_state(**ipv4):
    """eth0 active with its own static profile; no bridge yet."""
    return {
        "profiles": [
            {
                "name": "System eth0",
                "uuid": ETH0_UUID,
                "type": "802-3-ethernet",
                "device": "eth0",
                "filename": "/etc/NetworkManager/system-connections/System eth0.nmconnection",
                "active": "yes",
            }
        ],
        "devices": {
            "eth0": {"GENERAL.HWADDR": MAC, "GENERAL.STATE": "100 (connected)", "GENERAL.CONNECTION": "System eth0", "GENERAL.CON-UUID": ETH0_UUID},
            "breth0": None,
        },
        "details": {
            ETH0_UUID: details(
                **{
                    "connection_id": "System eth0",
                    "connection_interface-name": "eth0",
                    "ipv4_method": "manual",
                    "ipv4_addresses": "198.18.0.6/30",
                    "ipv4_gateway": "198.18.0.5",
                    "ipv4_dns": "198.18.0.53",
                    **ipv4,
                }
            )
        },
    }


def bridged_state():
    state = fresh_state()
    state["profiles"].append(
        {
            "name": "breth0",
            "uuid": BR_UUID,
            "type": "bridge",
            "device": "breth0",
            "filename": "/etc/NetworkManager/system-connections/breth0.nmconnection",
            "active": "yes",
        }
    )
    state["details"][ETH0_UUID].update(
        {"connection.master": "breth0", "connection.slave-type": "bridge", "ipv4.method": "", "ipv4.addresses": "", "ipv4.gateway": ""}
    )
    state["details"][BR_UUID] = details(
        **{
            "connection_id": "breth0",
            "connection_interface-name": "breth0",
            "ipv4_method": "manual",
            "ipv4_addresses": "198.18.0.6/30",
            "ipv4_gateway": "198.18.0.5",
        }
    )
    state["devices"]["breth0"] = {"GENERAL.HWADDR": MAC, "GENERAL.STATE": "100 (connected)", "GENERAL.CONNECTION": "breth0", "GENERAL.CON-UUID": BR_UUID}
    return state


def test_terse_fields_are_split_at_unescaped_colons():
    line = r"System eth0:%s:802-3-ethernet:eth0:/etc/a\:b.nmconnection:yes" % ETH0_UUID
    assert _nm_bridge.split_terse(line)[4] == "/etc/a:b.nmconnection"
    assert _nm_bridge.unescape_terse(r"8A\:6E\:06") == "8A:6E:06"


def test_read_state_asks_nmcli_and_reads_its_answers():
    answers = {
        "connection show": "System eth0:%s:802-3-ethernet:eth0:/etc/NetworkManager/system-connections/x:yes\n" % ETH0_UUID,
        "device show eth0": "8A\\:6E\\:06\\:62\\:FB\\:A0\n100 (connected)\nSystem eth0\n%s\n" % ETH0_UUID,
        "connection show uuid %s" % ETH0_UUID: "System eth0\n%s\neth0\n\n\nauto\n\n\n\nno\ndisabled\n\n\n\n" % ETH0_UUID,
    }

    def run(argv):
        key = " ".join(argv[3:])
        if key == "device show breth0":
            return 10, "", "Error: Device 'breth0' not found."
        return 0, answers[key], ""

    state = _nm_bridge.read_state(run, "eth0", "breth0")
    assert state["devices"]["eth0"]["GENERAL.HWADDR"] == MAC
    assert state["devices"]["breth0"] is None
    assert state["details"][ETH0_UUID]["ipv4.method"] == "auto"


def test_static_profile_becomes_the_port_and_its_addresses_go_to_the_bridge():
    plan = _nm_bridge.plan(fresh_state(), "eth0", "breth0")
    bridge, port = plan["keyfiles"]
    assert bridge == {
        "name": "breth0",
        "type": "bridge",
        "interface": "breth0",
        "cloned_mac_address": MAC,
        "autoconnect": True,
        "stp": False,
        "forward_delay": 0,
        "ipv4": {"method": "manual", "addresses": ["198.18.0.6/30"], "gateway": "198.18.0.5", "dns": ["198.18.0.53"]},
        "ipv6": {"method": "disabled", "addresses": [], "gateway": "", "dns": []},
        "settings": {},
    }
    assert port == {"name": "System eth0", "type": "ethernet", "interface": "eth0", "controller": "breth0", "autoconnect": True}
    assert plan["port_uuid"] == ETH0_UUID
    assert plan["runtime_ok"] is False
    assert plan["source"] == "eth0's profile System eth0"


def test_dhcp_stays_dhcp_and_keeps_never_default():
    plan = _nm_bridge.plan(fresh_state(ipv4_method="auto", ipv4_addresses="", ipv4_gateway="", **{"ipv4_never-default": "yes"}), "eth0", "breth0")
    bridge = plan["keyfiles"][0]
    assert bridge["ipv4"] == {"method": "auto", "addresses": [], "gateway": "", "dns": ["198.18.0.53"]}
    assert bridge["settings"] == {"ipv4": {"never-default": True}}


def test_asked_settings_win_over_the_profile():
    plan = _nm_bridge.plan(fresh_state(), "eth0", "breth0", "static", ["198.19.0.9/24"], "198.19.0.1", ["198.19.0.53"])
    assert plan["keyfiles"][0]["ipv4"] == {"method": "manual", "addresses": ["198.19.0.9/24"], "gateway": "198.19.0.1", "dns": ["198.19.0.53"]}
    assert plan["source"] == "host_bridge_bootproto static"
    assert _nm_bridge.plan(fresh_state(), "eth0", "breth0", "dhcp")["keyfiles"][0]["ipv4"]["method"] == "auto"


def test_a_bridged_host_takes_the_bridge_profile_as_source_and_is_running():
    plan = _nm_bridge.plan(bridged_state(), "eth0", "breth0")
    assert plan["keyfiles"][0]["ipv4"]["addresses"] == ["198.18.0.6/30"]
    assert plan["source"] == "breth0's profile breth0"
    assert plan["runtime_ok"] is True
    state = bridged_state()
    state["devices"]["breth0"]["GENERAL.STATE"] = "70 (connecting (getting IP configuration))"
    assert _nm_bridge.plan(state, "eth0", "breth0")["runtime_ok"] is False


@pytest.mark.parametrize(
    "change, args, message",
    [
        (lambda s: s["devices"].update(eth0=None), (), "NetworkManager has no device eth0"),
        (
            lambda s: s["profiles"][0].update(filename="/run/NetworkManager/system-connections/eth0.nmconnection"),
            (),
            "eth0 has no NetworkManager profile on disk",
        ),
        (lambda s: None, ("static",), "bootproto static needs addresses"),
        (lambda s: s["devices"]["eth0"].update({"GENERAL.HWADDR": ""}), (), "reports no MAC address for eth0"),
    ],
)
def test_what_cannot_be_planned_fails_with_what_to_do(change, args, message):
    state = fresh_state()
    change(state)
    with pytest.raises(ModuleError) as err:
        _nm_bridge.plan(state, "eth0", "breth0", *args)
    assert message in err.value.msg


def test_outcome_of_an_explicit_rollback():
    msg = _nm_bridge.outcome_message(
        "host_bridge: h1", "bridging eth0 into breth0", failure="'Write the profiles' failed: boom", restored={"eth0": "restored", "breth0": "restored"}
    )
    assert msg == (
        "host_bridge: h1: bridging eth0 into breth0 failed: 'Write the profiles' failed: boom; NetworkManager rolled "
        "back its checkpoint at once (breth0 restored, eth0 restored). The profiles on disk and the devices are as "
        "before the change, and the host answers again. Check host_bridge_nic, host_bridge_bootproto, "
        "host_bridge_addresses and host_bridge_gateway."
    )


def test_outcome_of_a_timeout_rollback_and_of_a_failed_restore():
    msg = _nm_bridge.outcome_message("host_bridge: h1", "bridging eth1 into breth1", checkpoint_gone=True, timeout=60)
    assert msg.startswith(
        "host_bridge: h1: lost connectivity after bridging eth1 into breth1: no fresh SSH connection "
        "confirmed the change within 60s; NetworkManager rolled back its checkpoint when the timeout ran out."
    )
    bad = _nm_bridge.outcome_message("", "x", failure="y", restored={"eth0": "failed"})
    assert bad.endswith("Check the host from its console: parts of the restore failed (eth0).")


def nmcli_answers(answers):
    calls = []

    def run(argv):
        calls.append(argv)
        return answers.get(" ".join(argv[1:]), (10, "", "Error: not found"))

    return run, calls


def test_activate_does_nothing_when_the_profile_runs_already():
    run, calls = nmcli_answers(
        {
            "-g connection.uuid connection show id isolbr0": (0, BR_UUID + "\n", ""),
            "-g %s device show isolbr0" % ",".join(_nm_bridge.DEVICE_FIELDS): (0, "\n100 (connected)\nisolbr0\n%s\n" % BR_UUID, ""),
        }
    )
    assert _nm_bridge.activate(run, "isolbr0", "isolbr0")["changed"] is False
    assert not any("up" in argv for argv in calls)


def test_activate_brings_up_a_missing_device_but_not_in_check_mode():
    answers = {
        "-g connection.uuid connection show id isolbr0": (0, BR_UUID + "\n", ""),
        "--wait 30 connection up uuid %s" % BR_UUID: (0, "Connection successfully activated\n", ""),
    }
    run, calls = nmcli_answers(answers)
    assert _nm_bridge.activate(run, "isolbr0", "isolbr0", check_mode=True)["changed"] is True
    assert not any("up" in argv for argv in calls)
    assert _nm_bridge.activate(run, "isolbr0", "isolbr0")["changed"] is True
    assert calls[-1] == ["nmcli", "--wait", "30", "connection", "up", "uuid", BR_UUID]


def test_activate_needs_exactly_one_profile():
    run = nmcli_answers({"-g connection.uuid connection show id x": (0, "a\nb\n", "")})[0]
    with pytest.raises(ModuleError) as err:
        _nm_bridge.activate(run, "x", "x")
    assert "more than one profile named x" in err.value.msg

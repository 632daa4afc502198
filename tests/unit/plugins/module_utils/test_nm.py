"""_nm: the backend decision, busctl's output, and checkpoints over a recorded bus."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _nm
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

NM = {"nm_running": True, "nm_version": "1.42.4", "nm_ifcfg_plugin": False, "network_scripts": False}
EL9 = dict(NM, nm_version="1.46.0", nm_ifcfg_plugin=True)
EL8_SCRIPTS = {"nm_running": False, "nm_version": None, "nm_ifcfg_plugin": True, "network_scripts": True}
BARE = {"nm_running": False, "nm_version": None, "nm_ifcfg_plugin": False, "network_scripts": False}


@pytest.mark.parametrize(
    "probe, backend, fmt, want",
    [
        (NM, "auto", "auto", ("networkmanager", "keyfile", True)),
        (EL9, "auto", "auto", ("networkmanager", "keyfile", True)),
        (EL9, "auto", "ifcfg", ("networkmanager", "ifcfg", True)),
        (EL9, "networkmanager", "keyfile", ("networkmanager", "keyfile", True)),
        (EL8_SCRIPTS, "auto", "auto", ("initscripts", "ifcfg", False)),
        (EL8_SCRIPTS, "initscripts", "ifcfg", ("initscripts", "ifcfg", False)),
        (NM, "initscripts", "auto", ("initscripts", "ifcfg", False)),
        (BARE, "auto", "auto", ("initscripts", "ifcfg", False)),
    ],
)
def test_choose_backend(probe, backend, fmt, want):
    got = _nm.choose_backend(probe, backend, fmt)
    assert (got["backend"], got["profile_format"], got["nm_controlled"]) == want
    assert got["reason"]


def test_reasons_say_why():
    assert _nm.choose_backend(NM)["reason"] == (
        "NetworkManager 1.42.4 is running (it answers on the system bus), so it brings the network up; "
        "profiles are NetworkManager keyfiles (the default on NetworkManager)"
    )
    assert "ifcfg-rh plugin, written without NM_CONTROLLED=no" in _nm.choose_backend(EL9, "auto", "ifcfg")["reason"]
    assert _nm.choose_backend(EL8_SCRIPTS)["warnings"] == []
    assert "Neither NetworkManager nor network-scripts" in _nm.choose_backend(BARE)["warnings"][0]
    assert "NM_CONTROLLED=no" in _nm.choose_backend(NM, "initscripts")["warnings"][0]


@pytest.mark.parametrize(
    "probe, backend, fmt, message",
    [
        (EL8_SCRIPTS, "networkmanager", "auto", "NetworkManager is not running on this host"),
        (NM, "auto", "ifcfg", "has no ifcfg-rh plugin and does not read ifcfg files"),
        (EL8_SCRIPTS, "auto", "keyfile", "profile_format keyfile needs NetworkManager"),
        (NM, "nmstate", "auto", "backend must be one of auto, networkmanager, initscripts"),
        (NM, "auto", "yaml", "profile_format must be one of"),
    ],
)
def test_impossible_choices_fail_with_what_to_do(probe, backend, fmt, message):
    with pytest.raises(ModuleError) as err:
        _nm.choose_backend(probe, backend, fmt)
    assert message in err.value.msg


@pytest.mark.parametrize(
    "text, want",
    [
        ('o "/org/freedesktop/NetworkManager/Checkpoint/1"\n', ["/org/freedesktop/NetworkManager/Checkpoint/1"]),
        ("b true\n", [True]),
        ("u 60\n", [60]),
        ('s "1.42.4"\n', ["1.42.4"]),
        ("ao 0\n", [[]]),
        ('ao 2 "/d/1" "/d/2"\n', [["/d/1", "/d/2"]]),
        ('a{su} 2 "/d/1" 0 "/d/3" 3\n', [{"/d/1": 0, "/d/3": 3}]),
        ('sb "x y" false\n', ["x y", False]),
        ("", []),
    ],
)
def test_parse_busctl(text, want):
    assert _nm.parse_busctl(text) == want


def test_split_types():
    assert _nm._split_types("oa{su}aaou") == ["o", "a{su}", "aao", "u"]


class FakeBus:
    """Answers busctl argv lists from a table; records the calls."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        key = " ".join(argv[2:])
        for prefix, answer in self.answers.items():
            if key.startswith(prefix):
                return answer
        return 1, "", "Unknown method %s" % key


OWNER = "call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner"
MGR = "org.freedesktop.NetworkManager /org/freedesktop/NetworkManager org.freedesktop.NetworkManager"


def checkpoints(answers):
    run = FakeBus(answers)
    return _nm.Checkpoints(_nm.Bus(run)), run


def test_create_resolves_devices_and_sends_the_flags():
    cps, run = checkpoints(
        {
            "call %s GetDeviceByIpIface s eth0" % MGR: (0, 'o "/org/freedesktop/NetworkManager/Devices/2"\n', ""),
            "call %s CheckpointCreate" % MGR: (0, 'o "/org/freedesktop/NetworkManager/Checkpoint/4"\n', ""),
        }
    )
    path = cps.create(["eth0"], 60, _nm.checkpoint_flags())
    assert path == "/org/freedesktop/NetworkManager/Checkpoint/4"
    assert run.calls[-1] == [
        "busctl",
        "--system",
        "call",
        *MGR.split(),
        "CheckpointCreate",
        "aouu",
        "1",
        "/org/freedesktop/NetworkManager/Devices/2",
        "60",
        "6",
    ]


def test_create_of_an_unknown_device_says_so():
    cps = checkpoints({})[0]
    with pytest.raises(ModuleError) as err:
        cps.create(["eth9"], 60, 6)
    assert "NetworkManager has no device eth9" in err.value.msg


def test_a_refused_checkpoint_points_at_the_leftover():
    cps = checkpoints(
        {
            "call %s CheckpointCreate" % MGR: (1, "", "Call failed: a checkpoint for device 'eth0' already exists"),
        }
    )[0]
    with pytest.raises(ModuleError) as err:
        cps.create([], 60, 6)
    assert "already exists" in err.value.msg and "action=status" in err.value.msg


def test_destroying_a_rolled_back_checkpoint_says_it_was_undone():
    cps, run = checkpoints({"get-property %s Checkpoints" % MGR: (0, "ao 0\n", "")})
    with pytest.raises(ModuleError) as err:
        cps.destroy("/org/freedesktop/NetworkManager/Checkpoint/1")
    assert "already rolled it back" in err.value.msg
    assert err.value.result == {"checkpoint_gone": True}
    assert not any("CheckpointDestroy" in argv for argv in run.calls)


def test_rollback_names_devices_read_before_the_rollback():
    cp = "/org/freedesktop/NetworkManager/Checkpoint/1"
    cps = checkpoints(
        {
            "get-property %s Checkpoints" % MGR: (0, 'ao 1 "%s"\n' % cp, ""),
            "get-property org.freedesktop.NetworkManager %s org.freedesktop.NetworkManager.Checkpoint Devices" % cp: (0, 'ao 2 "/d/2" "/d/7"\n', ""),
            "get-property org.freedesktop.NetworkManager /d/2 org.freedesktop.NetworkManager.Device Interface": (0, 's "eth0"\n', ""),
            "get-property org.freedesktop.NetworkManager /d/7 org.freedesktop.NetworkManager.Device Interface": (0, 's "breth0"\n', ""),
            "call %s CheckpointRollback o %s" % (MGR, cp): (0, 'a{su} 2 "/d/2" 0 "/d/7" 3\n', ""),
        }
    )[0]
    results, names = cps.rollback(cp)
    restored = _nm.rollback_restored(results, names)
    assert restored == {"eth0": "restored", "breth0": "failed"}
    assert _nm.rollback_summary(restored) == "breth0 failed, eth0 restored"


def test_probe_reads_the_bus_and_the_files():
    run = FakeBus(
        {
            OWNER: (0, "b true\n", ""),
            "get-property %s Version" % MGR: (0, 's "1.42.4"\n', ""),
        }
    )
    probe = _nm.probe_host(_nm.Bus(run), exists=lambda path: False, globber=lambda pattern: [])
    assert probe == NM
    quiet = FakeBus({OWNER: (1, "", "Failed to connect to bus")})
    probe = _nm.probe_host(_nm.Bus(quiet), exists=lambda path: path == "/etc/rc.d/init.d/network", globber=lambda p: [p])
    assert probe == {"nm_running": False, "nm_version": None, "nm_ifcfg_plugin": True, "network_scripts": True}


def test_adjust_restarts_the_countdown_of_an_existing_checkpoint():
    cp = "/org/freedesktop/NetworkManager/Checkpoint/2"
    cps, run = checkpoints({"get-property %s Checkpoints" % MGR: (0, 'ao 1 "%s"\n' % cp, ""), "call %s CheckpointAdjustRollbackTimeout" % MGR: (0, "", "")})
    cps.adjust(cp, 45)
    assert run.calls[-1][-4:] == ["CheckpointAdjustRollbackTimeout", "ou", cp, "45"]

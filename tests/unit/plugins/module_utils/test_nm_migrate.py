"""The migration off ifcfg: which ifcfg files become which keyfiles, what is refused, and the file moves in a temp tree."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _ifcfg, _keyfile, _nm_migrate
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

SCRIPTS = "/etc/sysconfig/network-scripts"
CONNS = "/etc/NetworkManager/system-connections"
BRIDGE = "DEVICE=breth0\nTYPE=Bridge\nBOOTPROTO=none\nIPADDR=198.19.0.21\nPREFIX=24\nGATEWAY=198.19.0.1\nONBOOT=yes\nDELAY=0\n"
PORT = "DEVICE=eth0\nTYPE=Ethernet\nHWADDR=52:54:00:12:34:56\nBRIDGE=breth0\nONBOOT=yes\nNM_CONTROLLED=no\n"
PLAIN = "DEVICE=eth1\nTYPE=Ethernet\nBOOTPROTO=dhcp\nONBOOT=yes\n"


def variables(text):
    return {k: _ifcfg.display(v) for k, v in _ifcfg.parse(text).items()}


def plan(files, keyfiles=None, names=()):
    ifcfg = {name: variables(text) for name, text in files.items()}
    return _nm_migrate.plan(SCRIPTS, ifcfg, keyfiles or {}, CONNS, set(names) | set(files))


def test_bridge_port_and_plain_nic_in_write_order():
    items = plan({"ifcfg-eth1": PLAIN, "ifcfg-eth0": PORT, "ifcfg-breth0": BRIDGE})
    assert [(i["role"], i["interface"], i["file_name"]) for i in items] == [
        ("bridge", "breth0", "System breth0.nmconnection"),
        ("port", "eth0", "System eth0.nmconnection"),
        ("ethernet", "eth1", "System eth1.nmconnection"),
    ]
    bridge = _keyfile.read_profile(items[0]["text"], items[0]["file_name"])
    assert (bridge["ipv4"]["method"], bridge["ipv4"]["addresses"], bridge["ipv4"]["gateway"]) == ("manual", ["198.19.0.21/24"], "198.19.0.1")
    assert bridge["bridge"] == {"stp": False, "forward_delay": 0}
    assert bridge["cloned_mac_address"] == "52:54:00:12:34:56"  # the port's, as the kernel gave it under network-scripts
    port = _keyfile.read_profile(items[1]["text"], items[1]["file_name"])
    assert (port["controller"], port["mac_address"]) == ("breth0", "52:54:00:12:34:56")
    assert port["controller_keys"] == ["master", "controller"]
    assert items[1]["warnings"] and "NM_CONTROLLED=no" in items[1]["warnings"][0]
    assert all(i["write"] for i in items)
    assert items[0]["ifcfg"] == SCRIPTS + "/ifcfg-breth0" and items[0]["keyfile"] == CONNS + "/System breth0.nmconnection"


def test_bridge_keeps_the_runtime_mac_of_a_port_without_hwaddr_and_its_own_macaddr():
    port = PORT.replace("HWADDR=52:54:00:12:34:56\n", "")
    items = _nm_migrate.plan(SCRIPTS, {"ifcfg-breth0": variables(BRIDGE), "ifcfg-eth0": variables(port)}, {}, CONNS, (), {"eth0": "52:54:00:AA:BB:CC"})
    assert _keyfile.read_profile(items[0]["text"], "x")["cloned_mac_address"] == "52:54:00:AA:BB:CC"
    own = plan({"ifcfg-breth0": BRIDGE + "MACADDR=52:54:00:01:02:03\n", "ifcfg-eth0": PORT})
    assert _keyfile.read_profile(own[0]["text"], "x")["cloned_mac_address"] == "52:54:00:01:02:03"
    two = plan({"ifcfg-breth0": BRIDGE, "ifcfg-eth0": PORT, "ifcfg-eth2": PORT.replace("DEVICE=eth0", "DEVICE=eth2").replace(":56", ":57")})
    assert _keyfile.read_profile(two[0]["text"], "x")["cloned_mac_address"] is None


def test_activations_bring_bridges_up_first_then_ports_and_plain_nics():
    items = plan(
        {
            "ifcfg-eth1": PLAIN,
            "ifcfg-eth0": PORT,
            "ifcfg-breth0": BRIDGE,
            "ifcfg-isol0": "DEVICE=isol0\nTYPE=Bridge\nONBOOT=yes\n",
            "ifcfg-eth2": "DEVICE=eth2\nONBOOT=no\n",
        }
    )
    assert [a["interface"] for a in _nm_migrate.activations(items)] == ["breth0", "isol0", "eth0", "eth1"]


@pytest.mark.parametrize(
    ("files", "names", "needle"),
    [
        ({"ifcfg-bond0": "DEVICE=bond0\nTYPE=Bond\n"}, (), "TYPE=Bond"),
        ({"ifcfg-eth0": "DEVICE=eth0\nBOOTPROTO=ibft\n"}, (), "BOOTPROTO=ibft"),
        ({"ifcfg-eth0": "DEVICE=eth0\nETHTOOL_OPTS=autoneg off\n"}, (), "ETHTOOL_OPTS"),
        ({"ifcfg-eth0": "DEVICE=eth0\nBOOTPROTO=dhcp\n"}, ("route-eth0",), "route-eth0"),
        ({"ifcfg-eth0": PORT}, (), "no bridge profile for breth0"),
        ({"ifcfg-eth0": PLAIN.replace("eth1", "eth0"), "ifcfg-eth0-copy": PLAIN.replace("eth1", "eth0")}, (), "same interface eth0"),
        ({"ifcfg-eth0": "DEVICE=eth0\nIPADDR=198.19.0.300\n"}, (), "not a valid address"),
    ],
)
def test_refused_with_every_problem_named(files, names, needle):
    with pytest.raises(ModuleError) as info:
        plan(files, names=names)
    assert needle in info.value.msg
    assert "changed nothing" in info.value.msg
    assert info.value.result["problems"]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ModuleError) as info:
        plan({"ifcfg-bond0": "DEVICE=bond0\nTYPE=Bond\n", "ifcfg-team0": "DEVICE=team0\nTYPE=Team\n", "ifcfg-eth1": PLAIN})
    assert len(info.value.result["problems"]) == 2


def test_existing_keyfile_of_the_same_device_is_refused():
    other = "[connection]\nid=eth1\nuuid=0e0c3ad7-6d4f-4f0e-9a3e-0f5c2f7d7a11\ntype=ethernet\ninterface-name=eth1\n"
    with pytest.raises(ModuleError, match="already configures eth1"):
        plan({"ifcfg-eth1": PLAIN}, {"eth1.nmconnection": other})


def test_existing_keyfile_with_the_same_uuid_is_refused():
    items = plan({"ifcfg-eth1": PLAIN})
    clash = "[connection]\nid=x\nuuid=%s\ntype=ethernet\ninterface-name=eth9\n" % items[0]["uuid"]
    with pytest.raises(ModuleError, match="has the uuid"):
        plan({"ifcfg-eth1": PLAIN}, {"x.nmconnection": clash})


def test_identical_keyfile_from_an_interrupted_run_is_kept_and_other_content_refused():
    items = plan({"ifcfg-eth1": PLAIN})
    again = plan({"ifcfg-eth1": PLAIN}, {items[0]["file_name"]: items[0]["text"]})
    assert again[0]["write"] is False
    with pytest.raises(ModuleError, match="exists with other content"):
        plan({"ifcfg-eth1": PLAIN}, {items[0]["file_name"]: items[0]["text"] + "\n[user]\nx=1\n"})


def test_port_of_a_bridge_that_already_has_a_keyfile_is_accepted():
    bridge = "[connection]\nid=breth0\nuuid=0e0c3ad7-6d4f-4f0e-9a3e-0f5c2f7d7a11\ntype=bridge\ninterface-name=breth0\n"
    items = plan({"ifcfg-eth0": PORT}, {"breth0.nmconnection": bridge})
    assert [i["role"] for i in items] == ["port"]


@pytest.mark.parametrize("backup_dir", [SCRIPTS, SCRIPTS + "/backup", SCRIPTS + "/", "relative/dir"])
def test_backup_dir_must_be_outside_network_scripts(backup_dir):
    with pytest.raises(ModuleError):
        _nm_migrate.check_backup_dir(backup_dir, SCRIPTS)


def test_backup_dir_next_to_network_scripts_is_fine():
    _nm_migrate.check_backup_dir("/etc/sysconfig/network-scripts-backup", SCRIPTS)
    _nm_migrate.check_backup_dir("/var/lib/kvmhost-bridging/ifcfg-backup", SCRIPTS)


def test_stamp_dir_is_new():
    first = _nm_migrate.stamp_dir("/b", [], now=0)
    assert first == "/b/19700101T000000Z"
    assert _nm_migrate.stamp_dir("/b", ["19700101T000000Z"], now=0) == "/b/19700101T000000Z-2"


def test_describe():
    assert _nm_migrate.describe([]) == "no ifcfg profile is left to migrate"
    assert "ifcfg-breth0 (bridge) -> System breth0.nmconnection" in _nm_migrate.describe(plan({"ifcfg-breth0": BRIDGE}))


# -- the module's run in a temp tree (as root, like the managed host) ---------------------------
class FakeModule:
    def __init__(self, **params):
        self.params = {"state": "migrated", "stamp": None, "reload": False, "failure": None, "rolled_back": None, **params}
        self.check_mode = params.pop("check_mode", False)
        self.params.pop("check_mode", None)

    def get_bin_path(self, _name, required=False):
        return None

    def run_command(self, argv, **_kwargs):  # pragma: no cover - reload is off here
        raise AssertionError(argv)


@pytest.fixture
def tree(tmp_path):
    scripts = tmp_path / "network-scripts"
    conns = tmp_path / "system-connections"
    scripts.mkdir()
    conns.mkdir(mode=0o700)
    os.chmod(conns, 0o700)
    for name, text in {"ifcfg-breth0": BRIDGE, "ifcfg-eth0": PORT, "ifcfg-eth1": PLAIN, "ifcfg-lo": "DEVICE=lo\n"}.items():
        (scripts / name).write_text(text)
    return {"config_dir": str(scripts), "keyfile_dir": str(conns), "backup_dir": str(tmp_path / "backup")}


def test_run_moves_and_writes_then_is_idempotent_and_restores(tree):
    check = _nm_migrate.run_module(FakeModule(check_mode=True, **tree))
    assert check["changed"] and len(check["diff"]) == 6
    assert sorted(os.listdir(tree["config_dir"])) == ["ifcfg-breth0", "ifcfg-eth0", "ifcfg-eth1", "ifcfg-lo"]
    assert os.listdir(tree["keyfile_dir"]) == []

    result = _nm_migrate.run_module(FakeModule(stamp="s1", **tree))
    assert result["changed"] and result["backup_dir"] == os.path.join(tree["backup_dir"], "s1")
    assert os.listdir(tree["config_dir"]) == ["ifcfg-lo"]
    assert sorted(os.listdir(result["backup_dir"])) == ["ifcfg-breth0", "ifcfg-eth0", "ifcfg-eth1", "manifest.json"]
    with open(os.path.join(result["backup_dir"], "ifcfg-eth0")) as handle:
        assert handle.read() == PORT
    for name in os.listdir(tree["keyfile_dir"]):
        st = os.stat(os.path.join(tree["keyfile_dir"], name))
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert sorted(os.listdir(tree["keyfile_dir"])) == ["System breth0.nmconnection", "System eth0.nmconnection", "System eth1.nmconnection"]

    again = _nm_migrate.run_module(FakeModule(**tree))
    assert again["changed"] is False and again["backup_dir"] is None

    back = dict(tree, backup_dir=result["backup_dir"], state="restored")
    undone = _nm_migrate.run_module(FakeModule(**back))
    assert undone["changed"] and len(undone["restored"]) == 3 and len(undone["removed"]) == 3
    assert sorted(os.listdir(tree["config_dir"])) == ["ifcfg-breth0", "ifcfg-eth0", "ifcfg-eth1", "ifcfg-lo"]
    assert os.listdir(tree["keyfile_dir"]) == []
    assert _nm_migrate.run_module(FakeModule(**back))["changed"] is False
    with open(os.path.join(result["backup_dir"], "manifest.json")) as handle:
        assert len(json.load(handle)["files"]) == 3


def test_refusal_changes_nothing(tree):
    with open(os.path.join(tree["config_dir"], "ifcfg-bond0"), "w") as handle:
        handle.write("DEVICE=bond0\nTYPE=Bond\n")
    with pytest.raises(ModuleError, match="TYPE=Bond"):
        _nm_migrate.run_module(FakeModule(**tree))
    assert len(os.listdir(tree["config_dir"])) == 5
    assert os.listdir(tree["keyfile_dir"]) == []
    assert not os.path.exists(tree["backup_dir"])


def test_unsafe_keyfile_dir_is_refused(tree):
    os.chmod(tree["keyfile_dir"], 0o777)
    with pytest.raises(ModuleError, match="not safe"):
        _nm_migrate.run_module(FakeModule(**tree))
    assert len(os.listdir(tree["config_dir"])) == 4


def test_stamp_with_a_slash_is_refused(tree):
    with pytest.raises(ModuleError, match="plain directory name"):
        _nm_migrate.run_module(FakeModule(stamp="../x", **tree))


def test_failed_migration_is_undone_and_reported(tree):
    result = _nm_migrate.run_module(FakeModule(stamp="s1", **tree))
    back = dict(
        tree,
        backup_dir=result["backup_dir"],
        state="restored",
        failure="'Activate' failed: timeout.",
        rolled_back="NetworkManager rolled back /cp/1 (eth0 restored)",
    )
    with pytest.raises(ModuleError) as info:
        _nm_migrate.run_module(FakeModule(**back))
    msg = info.value.msg
    assert msg.startswith("The migration off ifcfg failed: 'Activate' failed: timeout. NetworkManager rolled back /cp/1 (eth0 restored).")
    assert "The ifcfg files are back: " in msg and "ifcfg-eth0" in msg and "keyfiles the migration wrote are removed" in msg
    assert sorted(os.listdir(tree["config_dir"])) == ["ifcfg-breth0", "ifcfg-eth0", "ifcfg-eth1", "ifcfg-lo"]


def test_failure_before_anything_moved_is_reported(tree):
    back = dict(tree, backup_dir=os.path.join(tree["backup_dir"], "never"), state="restored", failure="boom")
    with pytest.raises(ModuleError, match="No ifcfg file had moved yet"):
        _nm_migrate.run_module(FakeModule(**back))


@pytest.mark.parametrize(
    ("failure", "rolled_back", "expected"),
    [
        (
            "unreachable",
            None,
            "The migration off ifcfg failed: the host did not answer over a fresh connection after the activation, "
            "so nothing confirmed the NetworkManager checkpoint. NetworkManager rolled the checkpoint back by itself when its timeout ran out.",
        ),
        (
            "activation: Error: Connection activation failed.",
            "NetworkManager rolled back /cp/1 (eth0 restored)",
            "The migration off ifcfg failed: NetworkManager could not activate every profile (Error: Connection activation failed.). "
            "NetworkManager rolled back /cp/1 (eth0 restored).",
        ),
    ],
)
def test_failure_messages(failure, rolled_back, expected):
    message = _nm_migrate.failure_message(failure, rolled_back, ["/x/ifcfg-eth0"], [])
    assert message.startswith(expected)
    assert message.endswith("The ifcfg files are back: /x/ifcfg-eth0. The host runs as before; fix the cause and run the migration again.")

"""nm_keyfile and nm_keyfile_info end to end in a temporary profile directory (no NetworkManager daemon).

Every file the module writes is also read with libnm 1.42's own keyfile reader
(tests/unit/plugins/module_utils/nm_keyfile_oracle.py), which must see the
profile the module meant.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from module_runner import run_main

from ansible_collections.kvmhost.bridging.plugins.modules import nm_keyfile, nm_keyfile_info

ORACLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils", "nm_keyfile_oracle.py")
MAC = "52:54:00:12:34:56"

BRIDGE = {
    "name": "breth0",
    "type": "bridge",
    "interface": "breth0",
    "cloned_mac_address": MAC,
    "stp": False,
    "forward_delay": 0,
    "ipv4": {"method": "auto"},
}
PORT = {"name": "breth0-port", "type": "ethernet", "interface": "eth0", "controller": "breth0"}

SYSTEM_ETH0 = """# written by the installer
[connection]
id=System eth0
uuid=4e80a56d-c99f-4aad-a6dd-b449bc398c57
type=ethernet
interface-name=eth0
autoconnect=true

[ethernet]
mac-address=52:54:00:12:34:56

[ipv4]
method=auto
dns=198.18.0.53;

[ipv6]
method=auto

[vendor-x]
tag=keep me
"""


@pytest.fixture
def nm_dir(tmp_path):
    directory = tmp_path / "system-connections"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def run_module(nm_dir, args, check=False, diff=False):
    return run_main(nm_keyfile, dict(args, config_dir=str(nm_dir)), check=check, diff=diff)


def nm_read(path):
    """libnm 1.42's reading of a file (the daemon's reader)."""
    out = subprocess.run(["/usr/bin/python3", ORACLE, str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[str(path)]


def snapshot(directory):
    return {name: ((directory / name).read_bytes(), stat.S_IMODE((directory / name).stat().st_mode)) for name in sorted(os.listdir(directory))}


def write_profile(directory, name, text, mode=0o600):
    path = directory / name
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_bridge_check_diff_write_idempotent(nm_dir):
    result = run_module(nm_dir, BRIDGE, check=True, diff=True)
    assert result["changed"]
    assert os.listdir(nm_dir) == []
    assert result["diff"]["before_header"].endswith("(absent)")
    assert "[bridge]\nstp=false\nforward-delay=0\n" in result["diff"]["after"]

    result = run_module(nm_dir, BRIDGE, diff=True)
    path = nm_dir / "breth0.nmconnection"
    assert result["changed"]
    assert result["path"] == str(path)
    assert os.listdir(nm_dir) == ["breth0.nmconnection"]  # no temp file left
    st = path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert result["changed_keys"][:4] == ["connection.id", "connection.uuid", "connection.type", "connection.interface-name"]
    uuid = result["uuid"]

    nm = nm_read(path)
    assert (nm["id"], nm["uuid"], nm["type"], nm["interface_name"]) == ("breth0", uuid, "bridge", "breth0")
    assert nm["cloned_mac_address"] == MAC.upper()
    assert nm["bridge"] == {"stp": False, "forward_delay": 0}
    assert nm["ipv4"]["method"] == "auto"

    again = run_module(nm_dir, BRIDGE, diff=True)
    assert not again["changed"]
    assert again["changes"] == []
    assert again["uuid"] == uuid  # stable
    assert again["diff"]["before"] == again["diff"]["after"]


def test_new_file_is_0600_under_umask_000(nm_dir):
    old = os.umask(0)
    try:
        run_module(nm_dir, BRIDGE)
    finally:
        os.umask(old)
    assert stat.S_IMODE((nm_dir / "breth0.nmconnection").stat().st_mode) == 0o600


def test_existing_profile_of_the_nic_becomes_the_port(nm_dir):
    path = write_profile(nm_dir, "System eth0.nmconnection", SYSTEM_ETH0)
    result = run_module(nm_dir, dict(PORT, backup=True), diff=True)
    assert result["changed"]
    assert result["adopted"]
    assert (result["path"], result["id"], result["uuid"]) == (str(path), "System eth0", "4e80a56d-c99f-4aad-a6dd-b449bc398c57")
    assert sorted(os.listdir(nm_dir))[0] == "System eth0.nmconnection"
    backups = [name for name in os.listdir(nm_dir) if name.endswith("~")]
    assert backups == [os.path.basename(result["backup_file"])]
    assert (nm_dir / backups[0]).read_text() == SYSTEM_ETH0
    text = path.read_text()
    assert text.startswith("# written by the installer\n[connection]\nid=System eth0\n")
    assert "master=breth0\nslave-type=bridge\ncontroller=breth0\nport-type=bridge\n" in text
    assert "[ipv4]" not in text and "[ipv6]" not in text
    assert "[vendor-x]\ntag=keep me\n" in text
    assert "mac-address=52:54:00:12:34:56" in text
    assert {"section": "ipv4", "key": "method", "action": "remove", "before": "auto", "after": None} in result["changes"]

    nm = nm_read(path)
    assert (nm["controller"], nm["port_type"], nm["interface_name"]) == ("breth0", "bridge", "eth0")
    assert nm["ipv4"] == {}

    again = run_module(nm_dir, PORT)
    assert not again["changed"]
    assert again["id"] == "System eth0"


def test_profile_found_by_mac_and_plain_nic_again(nm_dir):
    text = (
        "[connection]\nid=Wired\nuuid=0bef2d09-50a3-56b9-912a-5dc941284e3e\ntype=802-3-ethernet\nmaster=br9\nslave-type=bridge\n\n"
        "[802-3-ethernet]\nmac-address=52:54:00:12:34:56\n"
    )
    path = write_profile(nm_dir, "wired", text)
    result = run_module(nm_dir, {"name": "eth0", "type": "ethernet", "interface": "eth0", "mac_address": MAC, "ipv4": {"method": "auto"}})
    assert result["adopted"] and result["path"] == str(path)
    after = path.read_text()
    assert "type=802-3-ethernet" in after  # the alias is the same type: not rewritten
    assert "master=" not in after and "slave-type=" not in after
    assert after.count("[802-3-ethernet]") == 1 and "[ethernet]" not in after
    nm = nm_read(path)
    assert nm["controller"] is None
    assert nm["interface_name"] == "eth0"


def test_two_profiles_of_one_nic_are_an_error_and_nothing_changes(nm_dir):
    write_profile(nm_dir, "a.nmconnection", SYSTEM_ETH0)
    write_profile(nm_dir, "b.nmconnection", SYSTEM_ETH0.replace("System eth0", "Other").replace("4e80", "5e80"))
    before = snapshot(nm_dir)
    result = run_module(nm_dir, PORT)
    assert result["failed"]
    assert "Several profiles apply to eth0" in result["msg"] and "a.nmconnection (System eth0)" in result["msg"]
    assert snapshot(nm_dir) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(BRIDGE, name="lab/bridge"), "contains /"),
        (dict(BRIDGE, name=".hidden"), "starts with ."),
        (dict(BRIDGE, cloned_mac_address="01:00:5e:00:00:01"), "multicast"),
        (dict(PORT, mac_address="33:33:00:00:00:01"), "multicast"),
        (dict(BRIDGE, ipv4={"method": "manual", "addresses": ["198.18.5.10/33"]}), "198.18.5.10/33"),
        (dict(BRIDGE, ipv4={"method": "manual", "addresses": ["198.18.5.10"]}), "needs a prefix length"),
        (dict(BRIDGE, ipv4={"method": "manual"}), "needs ipv4.addresses"),
        (dict(BRIDGE, ipv4={"method": "auto", "gateway": "198.18.5.1"}), "gateway cannot be set"),
        (dict(BRIDGE, ipv4={"method": "disabled", "addresses": ["198.18.5.10/24"]}), "refuses addresses"),
        (dict(BRIDGE, ipv6={"method": "manual", "addresses": ["198.18.5.10/24"]}), "not an IPv6 address"),
        (dict(BRIDGE, forward_delay=1), "2 to 30"),
        (dict(BRIDGE, stp=True, forward_delay=0), "needs stp: false"),
        (dict(PORT, ipv4={"method": "auto"}), "port of breth0"),
        (dict(PORT, stp=True), "apply to bridges"),
        (dict(BRIDGE, interface="eth0/1"), "not a valid interface name"),
        (dict(BRIDGE, settings={"bridge": {"stp": True}}), "stp option"),
        (dict(BRIDGE, settings={"ipv4": {"address1": "198.18.5.1/24"}}), "ipv4.addresses option"),
        (dict(BRIDGE, settings={"bridge": {"x": "\fy"}}), "form feed"),
        (dict(BRIDGE, uuid="not-a-uuid"), "is not a uuid"),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(nm_dir, args, message):
    write_profile(nm_dir, "System eth0.nmconnection", SYSTEM_ETH0)
    before = snapshot(nm_dir)
    result = run_module(nm_dir, args)
    assert result.get("failed"), result
    assert message in result["msg"]
    assert snapshot(nm_dir) == before


@pytest.mark.parametrize(("owner", "mode", "message"), [(65534, 0o700, "owned by"), (0, 0o775, "group or others can write")])
def test_unsafe_profile_directory_is_refused(nm_dir, owner, mode, message):
    os.chown(nm_dir, owner, 0)
    os.chmod(nm_dir, mode)
    result = run_module(nm_dir, BRIDGE)
    assert result["failed"]
    assert message in result["msg"] and "chown root:root" in result["msg"]
    assert os.listdir(nm_dir) == []


def test_wrong_mode_and_owner_of_an_existing_file_are_fixed(nm_dir):
    run_module(nm_dir, BRIDGE)
    path = nm_dir / "breth0.nmconnection"
    content = path.read_bytes()
    os.chmod(path, 0o644)
    os.chown(path, 65534, 65534)
    result = run_module(nm_dir, BRIDGE, check=True)
    assert result["changed"] and result["changed_keys"] == ["file.owner", "file.mode"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    result = run_module(nm_dir, BRIDGE)
    assert result["changed"]
    st = path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert path.read_bytes() == content
    assert not run_module(nm_dir, BRIDGE)["changed"]


def test_rewrite_keeps_comments_unknown_keys_and_sections(nm_dir):
    text = (
        "# keep\n[connection]\nid=breth0\nuuid=8f061643-fe41-4d4c-a8d9-097d26e2ad3a\ntype=bridge\ninterface-name=breth0\nzone=trusted\n\n"
        "[bridge]\n# bridge comment\nstp=true\npriority=100\n\n[user]\norg.example.tag=1\n"
    )
    path = write_profile(nm_dir, "breth0.nmconnection", text)
    result = run_module(nm_dir, BRIDGE)
    assert result["changed"]
    after = path.read_text()
    assert after.startswith("# keep\n[connection]\nid=breth0\nuuid=8f061643-fe41-4d4c-a8d9-097d26e2ad3a\ntype=bridge\ninterface-name=breth0\nzone=trusted\n")
    assert "[bridge]\n# bridge comment\nstp=false\npriority=100\nforward-delay=0\n" in after
    assert "[user]\norg.example.tag=1\n" in after
    assert result["changed_keys"] == ["ethernet.cloned-mac-address", "bridge.stp", "bridge.forward-delay", "ipv4.method"]
    assert nm_read(path)["uuid"] == "8f061643-fe41-4d4c-a8d9-097d26e2ad3a"


def test_settings_escape_hatch_sets_and_removes(nm_dir):
    args = dict(BRIDGE, settings={"bridge": {"multicast-snooping": False, "group-address": None}, "ipv4": {"dns-search": ["lab.example", "a;b"]}})
    run_module(nm_dir, args)
    path = nm_dir / "breth0.nmconnection"
    assert "multicast-snooping=false\n" in path.read_text()
    assert "dns-search=lab.example;a\\;b;\n" in path.read_text()
    assert not run_module(nm_dir, args)["changed"]
    result = run_module(nm_dir, dict(BRIDGE, settings={"bridge": {"multicast-snooping": None}, "ipv4": None}))
    assert result["changed"]
    assert "multicast-snooping" not in path.read_text() and "[ipv4]" not in path.read_text()


def test_static_addresses_own_every_address_key(nm_dir):
    text = (
        "[connection]\nid=brvm\nuuid=8f061643-fe41-4d4c-a8d9-097d26e2ad3a\ntype=bridge\ninterface-name=brvm\n\n"
        "[ipv4]\nmethod=manual\naddress1=198.18.9.1/24\naddresses7=198.18.8.1;24;\n"
    )
    path = write_profile(nm_dir, "brvm.nmconnection", text)
    ipv4 = {"method": "manual", "addresses": ["198.18.5.1/24", "198.18.6.1/24"], "gateway": "198.18.5.254", "dns": ["198.18.5.53"]}
    result = run_module(nm_dir, {"name": "brvm", "type": "bridge", "interface": "brvm", "ipv4": ipv4, "ipv6": {"method": "disabled"}})
    assert result["changed"]
    nm = nm_read(path)
    assert nm["ipv4"] == {"method": "manual", "addresses": ["198.18.5.1/24", "198.18.6.1/24"], "gateway": "198.18.5.254", "dns": ["198.18.5.53"]}
    assert nm["ipv6"]["method"] == "disabled"
    assert "addresses7" not in path.read_text()


def test_a_file_glib_refuses_is_not_rewritten(nm_dir):
    path = write_profile(nm_dir, "breth0.nmconnection", "[connection]\nid=breth0\nbroken line\n")
    result = run_module(nm_dir, BRIDGE)
    assert result["failed"] and "cannot be read as a keyfile" in result["msg"]
    assert path.read_text() == "[connection]\nid=breth0\nbroken line\n"


def test_a_name_whose_file_holds_another_profile_is_an_error(nm_dir):
    write_profile(nm_dir, "breth0.nmconnection", "[connection]\nid=other\ntype=bridge\ninterface-name=brx\n")
    result = run_module(nm_dir, BRIDGE)
    assert result["failed"] and "holds the profile 'other'" in result["msg"]


def test_absent_removes_the_profile_by_id_with_backup(nm_dir):
    path = write_profile(nm_dir, "System eth0.nmconnection", SYSTEM_ETH0)
    args = {"name": "System eth0", "state": "absent", "backup": True}
    assert run_module(nm_dir, args, check=True)["changed"]
    assert path.exists()
    result = run_module(nm_dir, args)
    assert result["changed"] and not path.exists()
    assert result["backup_file"].endswith("~")
    assert not run_module(nm_dir, args)["changed"]


def test_info_reports_owners_ports_and_problems(nm_dir):
    run_module(nm_dir, BRIDGE)
    write_profile(nm_dir, "System eth0.nmconnection", SYSTEM_ETH0)
    run_module(nm_dir, PORT)
    write_profile(nm_dir, "loose.nmconnection", "[connection]\nid=loose\ntype=ethernet\ninterface-name=eth1\n", mode=0o644)
    write_profile(nm_dir, "new-only.nmconnection", "[connection]\nid=new-only\ntype=ethernet\ninterface-name=eth2\ncontroller=breth0\nport-type=bridge\n")
    write_profile(nm_dir, ".hidden.nmconnection", "[connection]\nid=hidden\n")
    result = run_main(nm_keyfile_info, {"config_dir": str(nm_dir)})
    assert not result["changed"]
    by_id = {profile["id"]: profile for profile in result["profiles"]}
    assert sorted(by_id) == ["System eth0", "breth0", "loose", "new-only"]
    assert by_id["System eth0"]["controller"] == "breth0" and by_id["System eth0"]["controller_keys"] == ["master", "controller"]
    assert by_id["System eth0"]["problems"] == []
    assert not by_id["loose"]["loaded"] and "mode 0644" in by_id["loose"]["problems"][0]
    assert any("before 1.46" in problem for problem in by_id["new-only"]["problems"])
    assert result["interfaces"] == {"breth0": ["breth0"], "eth0": ["System eth0"], "eth2": ["new-only"]}
    assert result["ports"] == {"breth0": ["System eth0", "new-only"]}

    result = run_main(nm_keyfile_info, {"config_dir": str(nm_dir), "interfaces": ["eth0", "eth9"]})
    assert [profile["id"] for profile in result["profiles"]] == ["System eth0"]
    assert result["interfaces"] == {"eth0": ["System eth0"], "eth9": []}

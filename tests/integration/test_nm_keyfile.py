"""nm_keyfile and nm_keyfile_info on lab hosts, in each host's own /etc/NetworkManager/system-connections.

On plain hosts the files are only written and read (no NetworkManager runs);
on a NetworkManager host, real NetworkManager 1.42 loads the written files and
brings the bridge up from them, also after a simulated reboot.
"""

from __future__ import annotations

import json
import time

import pytest

DIR = "/etc/NetworkManager/system-connections"
MODULE = "kvmhost.bridging.nm_keyfile"
INFO = "kvmhost.bridging.nm_keyfile_info"

SYSTEM_ETH1 = """# the installer's profile
[connection]
id=System eth1
uuid=4e80a56d-c99f-4aad-a6dd-b449bc398c57
type=ethernet
interface-name=eth1

[ipv4]
method=auto

[ipv6]
method=ignore
"""


def ls(host):
    return sorted(host.run(["ls", "-A1", DIR]).stdout.splitlines())


def stat(host, path):
    return host.run(["stat", "-c", "%a %U %G", path]).stdout.strip()


def snapshot(host):
    out = host.run(["sh", "-c", 'cd "$1" && for f in * .[!.]*; do [ -e "$f" ] && stat -c "%n %a %U" "$f" && md5sum "$f"; done; true', "sh", DIR])
    return out.stdout


def mac_of(host, device):
    return host.run(["cat", "/sys/class/net/%s/address" % device]).stdout.strip()


@pytest.fixture
def plain(host):
    """A plain lab host (no NetworkManager) with an empty, root-owned profile directory of its own."""
    host.run(["sh", "-c", 'mkdir -p "$1" && chmod 700 "$1" && rm -f "$1"/*', "sh", DIR])
    return host


def play_result(ansible, host, args, module=MODULE, extra_vars=None):
    """Run one task in a play; return (status, result)."""
    play = [{"hosts": host.name, "gather_facts": False, "tasks": [{"name": "under test", module: args, "ignore_errors": True}]}]
    result = ansible.playbook(json.dumps(play, indent=1) + "\n", extra_vars=extra_vars)
    records = [r for r in result.results if r["host"] == host.name and r["task"] == "under test"]
    assert records, result.output
    return records[-1].get("status"), records[-1]["result"]


def test_bridge_and_port_check_diff_idempotent(plain, ansible):
    host = plain
    mac = mac_of(host, "eth1")
    host.write_file(DIR + "/System eth1.nmconnection", SYSTEM_ETH1, mode="600")
    bridge = {"name": "breth1", "type": "bridge", "interface": "breth1", "cloned_mac_address": mac, "stp": False, "forward_delay": 0,
              "ipv4": {"method": "auto"}}  # fmt: skip
    port = {"name": "breth1-port", "type": "ethernet", "interface": "eth1", "controller": "breth1", "backup": True}
    before = snapshot(host)

    for args in (bridge, port):
        check = ansible.module(host, MODULE, args, check=True, diff=True)
        assert not check.get("failed"), check
        assert check["changed"] is True
    assert snapshot(host) == before  # check mode touched nothing
    assert "master=breth1\nslave-type=bridge\ncontroller=breth1\nport-type=bridge\n" in check["diff"]["after"]
    assert "[ipv4]" in check["diff"]["before"] and "[ipv4]" not in check["diff"]["after"]

    done = ansible.module(host, MODULE, bridge, diff=True)
    assert done["changed"] is True and done["path"] == DIR + "/breth1.nmconnection"
    port_done = ansible.module(host, MODULE, port, diff=True)
    assert port_done["changed"] is True and port_done["adopted"] is True and port_done["id"] == "System eth1"
    assert port_done["uuid"] == "4e80a56d-c99f-4aad-a6dd-b449bc398c57"
    names = ls(host)
    assert names[:2] == ["System eth1.nmconnection", "System eth1.nmconnection." + port_done["backup_file"].split(".nmconnection.")[1]]
    assert names[2:] == ["breth1.nmconnection"]  # no temp file, no second profile for eth1
    assert stat(host, DIR + "/breth1.nmconnection") == "600 root root"
    assert stat(host, DIR + "/System eth1.nmconnection") == "600 root root"
    text = host.read_file(DIR + "/System eth1.nmconnection")
    assert text.startswith("# the installer's profile\n[connection]\nid=System eth1\n")

    for args in (bridge, port):
        again = ansible.module(host, MODULE, args, diff=True)
        assert again["changed"] is False, again
        assert again["diff"]["before"] == again["diff"]["after"]

    info = ansible.module(host, INFO, {"interfaces": ["eth1", "breth1"]})
    assert info["interfaces"] == {"eth1": ["System eth1"], "breth1": ["breth1"]}
    assert info["ports"] == {"breth1": ["System eth1"]}
    assert all(profile["loaded"] and profile["problems"] == [] for profile in info["profiles"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "lab/bridge", "type": "bridge", "interface": "breth1"}, "contains /"),
        ({"name": "breth1", "type": "bridge", "interface": "breth1", "cloned_mac_address": "01:00:5e:00:00:01"}, "multicast"),
        ({"name": "breth1", "type": "bridge", "interface": "breth1", "ipv4": {"method": "manual", "addresses": ["198.18.5.1/40"]}}, "198.18.5.1/40"),
        ({"name": "eth1", "type": "ethernet", "interface": "eth1", "controller": "breth1", "ipv4": {"method": "auto"}}, "port of breth1"),
    ],
)
def test_bad_input_changes_nothing(plain, ansible, args, message):
    plain.write_file(DIR + "/System eth1.nmconnection", SYSTEM_ETH1, mode="600")
    before = snapshot(plain)
    status, result = play_result(ansible, plain, args)
    assert status == "failed", result
    assert message in result["msg"]
    assert snapshot(plain) == before


def test_unsafe_profile_directory_is_refused(plain, ansible):
    plain.run(["chown", "nobody", DIR])
    before = snapshot(plain)
    status, result = play_result(ansible, plain, {"name": "breth1", "type": "bridge", "interface": "breth1"})
    assert status == "failed"
    assert "owned by nobody, not root" in result["msg"] and "chown root:root" in result["msg"]
    assert snapshot(plain) == before


def test_files_are_0600_under_umask_000(plain, ansible):
    wrapper = "/etc/kvmb-python-umask000"  # the host's own /etc
    probe = "/etc/kvmb-umask-probe"
    plain.write_file(wrapper, '#!/bin/sh\numask 000\nexec /usr/bin/python3 "$@"\n', mode="755")
    plain.run(["rm", "-f", probe])
    tasks = [
        {"name": "a file made without care shows the umask", "ansible.builtin.command": {"argv": ["touch", probe]}},
        {"name": "under test", MODULE: {"name": "breth1", "type": "bridge", "interface": "breth1", "backup": True}},
        {"name": "rewrite", MODULE: {"name": "breth1", "type": "bridge", "interface": "breth1", "stp": False, "backup": True}},
    ]
    play = [{"hosts": plain.name, "gather_facts": False, "vars": {"ansible_python_interpreter": wrapper}, "tasks": tasks}]
    result = ansible.playbook(json.dumps(play) + "\n")
    assert result.rc == 0, result.output
    assert stat(plain, probe) == "666 root root"  # the umask really was 000
    assert stat(plain, DIR + "/breth1.nmconnection") == "600 root root"
    backups = [name for name in ls(plain) if name.endswith("~")]
    assert len(backups) == 1 and stat(plain, DIR + "/" + backups[0]) == "600 root root"


# ---------------------------------------------------------------------------
# Real NetworkManager


def nm_wait(host, check, what, timeout=90.0):
    """Poll ``check()`` until it is true; fail with ``what`` and NetworkManager's view otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    devices = host.run(["nmcli", "-t", "device"], check=False).stdout
    pytest.fail("%s did not happen within %.0fs; nmcli device:\n%s" % (what, timeout, devices))


def ipv4_of(host, device):
    out = host.run(["ip", "-4", "-o", "addr", "show", "dev", device], check=False).stdout.split()
    return out[3].split("/")[0] if len(out) > 3 else None


def controller_of(host, device):
    out = host.run(["ip", "-o", "link", "show", "dev", device], check=False).stdout
    return out.split(" master ")[1].split()[0] if " master " in out else None


def test_networkmanager_loads_the_files_and_brings_the_bridge_up(nm_host, ansible):
    host = nm_host
    mac = mac_of(host, "eth1")
    bridge = {"name": "breth1", "type": "bridge", "interface": "breth1", "cloned_mac_address": mac, "stp": False, "forward_delay": 0,
              "ipv4": {"method": "auto", "dns": []}, "ipv6": {"method": "disabled"}, "settings": {"ipv4": {"never-default": True}},
              "reload": True}  # fmt: skip
    port = {"name": "eth1", "type": "ethernet", "interface": "eth1", "controller": "breth1", "reload": True}
    done = ansible.module(host, MODULE, bridge)
    assert done["changed"] and done["reloaded"], done
    port_done = ansible.module(host, MODULE, port)
    assert port_done["changed"] and port_done["reloaded"] and port_done["path"] == DIR + "/eth1.nmconnection", port_done

    shown = host.run(["nmcli", "-t", "-f", "NAME,UUID,TYPE,DEVICE,FILENAME", "connection", "show"]).stdout
    assert "breth1:%s:bridge:" % done["uuid"] in shown
    assert host.run(["nmcli", "-g", "connection.master,connection.slave-type", "connection", "show", "eth1"]).stdout.split() == ["breth1", "bridge"]
    cloned = host.run(["nmcli", "-g", "802-3-ethernet.cloned-mac-address", "connection", "show", "breth1"]).stdout.strip()
    assert cloned.replace("\\", "").lower() == mac  # nmcli -g escapes the colons
    # Applying is not the module's job; here NetworkManager activates the port, which brings up its bridge.
    host.run(["nmcli", "connection", "up", "eth1"])
    nm_wait(host, lambda: controller_of(host, "eth1") == "breth1" and (ipv4_of(host, "breth1") or "").startswith("198.19.0."), "breth1 up with a lease")
    assert mac_of(host, "breth1") == mac
    lease = ipv4_of(host, "breth1")

    # The reboot proof: NetworkManager stops, the bridge and the NIC's state go, NetworkManager starts again.
    # A reboot also empties /run: without that, NetworkManager would "assume" eth1's last state
    # (/run/NetworkManager/devices/<ifindex>) instead of activating its profiles from the files.
    indexes = [host.run(["cat", "/sys/class/net/%s/ifindex" % device]).stdout.strip() for device in ("eth1", "breth1")]
    host.stop_networkmanager()
    host.run(["ip", "link", "del", "breth1"])
    host.run(["ip", "addr", "flush", "dev", "eth1"])
    host.run(["ip", "link", "set", "eth1", "down"])
    host.run(["rm", "-f", *["/run/NetworkManager/devices/" + index for index in indexes]])
    host.start_networkmanager()
    nm_wait(host, lambda: controller_of(host, "eth1") == "breth1" and ipv4_of(host, "breth1") == lease, "breth1 back from the keyfiles")
    assert ansible.module(host, MODULE, dict(bridge, reload=False))["changed"] is False
    assert ansible.module(host, MODULE, dict(port, reload=False))["changed"] is False


def test_networkmanager_loads_a_new_profile_and_forgets_a_removed_one(nm_host, ansible):
    host = nm_host

    def names():
        return host.run(["nmcli", "-t", "-f", "NAME", "connection", "show"]).stdout.splitlines()

    spare = {"name": "spare bridge", "type": "bridge", "interface": "brspare", "autoconnect": False, "ipv4": {"method": "disabled"},
             "ipv6": {"method": "ignore"}, "reload": True}  # fmt: skip
    written = ansible.module(host, MODULE, spare)
    assert written["changed"] and written["reloaded"], written
    assert written["path"] == DIR + "/spare bridge.nmconnection"
    assert "spare bridge" in names()
    info = ansible.module(host, INFO, {"ids": ["spare bridge"]})
    assert [profile["loaded"] for profile in info["profiles"]] == [True]

    removed = ansible.module(host, MODULE, {"name": "spare bridge", "state": "absent", "reload": True})
    assert removed["changed"] and removed["reloaded"], removed
    assert "spare bridge" not in names()
    assert host.read_file(DIR + "/spare bridge.nmconnection") is None

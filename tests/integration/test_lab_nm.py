"""The lab's NetworkManager hosts: real NetworkManager manages eth0 and eth1 from keyfiles."""

from __future__ import annotations

import os

import kvmblab


def device_states(host):
    out = host.run(["nmcli", "-t", "-f", "DEVICE,STATE,CONNECTION", "device"]).stdout
    return {line.split(":")[0]: line.split(":", 2)[1:] for line in out.splitlines()}


def test_networkmanager_manages_the_nics_from_keyfiles(nm_host):
    states = device_states(nm_host)
    assert states["eth0"] == ["connected", "eth0"]
    assert states["eth1"] == ["connected", "eth1"]
    listing = nm_host.run(["ls", "-l", "/etc/NetworkManager/system-connections"]).stdout
    assert "eth0.nmconnection" in listing and "-rw------- 1 root root" in listing
    # No ifcfg files on a keyfile host, as on EL9/EL10.
    assert nm_host.read_file("/etc/sysconfig/network-scripts/ifcfg-eth0") is None
    # NetworkManager's own view: the profile holds the management address that carries SSH.
    assert nm_host.run(["nmcli", "-g", "ipv4.addresses", "connection", "show", "eth0"]).stdout.strip() == nm_host.address + "/30"
    # The checkpoint API answers on the host's private bus.
    out = nm_host.run(
        [
            "busctl",
            "call",
            "org.freedesktop.NetworkManager",
            "/org/freedesktop/NetworkManager",
            "org.freedesktop.NetworkManager",
            "CheckpointCreate",
            "aouu",
            "0",
            "60",
            "6",
        ]
    ).stdout
    path = out.split('"')[1]
    nm_host.run(
        [
            "busctl",
            "call",
            "org.freedesktop.NetworkManager",
            "/org/freedesktop/NetworkManager",
            "org.freedesktop.NetworkManager",
            "CheckpointDestroy",
            "o",
            path,
        ]
    )


def sys_options(mounts_text):
    """The options of the /sys mount that is on top (the last one listed)."""
    return [line.split()[3] for line in mounts_text.splitlines() if line.split()[1] == "/sys"][-1].split(",")


def test_sys_is_read_only_only_inside_the_host(nm_host):
    assert nm_host.run(["touch", "/sys/kvmb-probe"], check=False).returncode != 0
    assert "ro" in sys_options(nm_host.read_file("/proc/self/mounts"))
    with open("/proc/self/mounts") as handle:  # the machine's own /sys is untouched
        assert "rw" in sys_options(handle.read())


def test_restart_and_teardown_stop_the_daemons_by_pid(lab):
    host = lab.add_host(networkmanager=True)
    try:
        before = dict(lab._record(host.name)["services"])
        assert set(before) == {"NetworkManager", "dbus"}
        host.stop_networkmanager()
        assert not any(kvmblab._pid_alive(pid) for pid in before.values())
        host.start_networkmanager()
        after = lab._record(host.name)["services"]
        assert all(kvmblab._pid_alive(pid) for pid in after.values())
        assert device_states(host)["eth0"][0].startswith("connected")
    finally:
        lab.remove_host(host)
    assert not any(kvmblab._pid_alive(pid) and kvmblab._is_lab_process(pid) for pid in after.values())
    assert not os.path.exists(os.path.join(lab.state_dir, "hosts", host.name))

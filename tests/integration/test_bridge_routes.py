"""kvmhost.bridging.bridge moving the address and route shapes real hosts carry (issue #16), on real lab hosts.

Each shape is set on the host's eth1 (on the lab LAN, 198.19.0.0/24, gateway
198.19.0.1) as NetworkManager, systemd-networkd, dhclient/initscripts or a
hand-written ``ip`` leave it; the module then bridges eth1 with
migrate_addresses. Checked on the kernel: every route is on breth0 with its
attributes, the addresses keep their flags, eth1 keeps none of them, the LAN
gateway answers over breth0, and a second run changes nothing. The issue's
reproduction also runs with an SSH session over eth1 that keeps printing.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest
from test_bridge import run

ADDR = "198.19.0.114"
LAN_GATEWAY = "198.19.0.1"
V6_GATEWAY = "fd00:198:19::1"


def ip_json(host, *argv):
    return json.loads(host.run(["ip", "-j", *argv]).stdout or "[]")


def route_texts(host, dev):
    """``ip route`` lines of both families, all tables, that use ``dev``; without lifetimes and kernel-local routes."""
    found = []
    for family in ("-4", "-6"):
        out = host.run(["ip", family, "-o", "route", "show", "table", "all", "dev", dev]).stdout
        for line in out.splitlines():
            words = line.split()
            if words[0] in ("local", "broadcast", "multicast", "anycast") or words[0].startswith("fe80::") or "expires" in words:
                continue
            found.append(" ".join(w for w in words if w not in ("linkdown",)).replace(" pref medium", ""))
    return sorted(found)


def addresses(host, dev):
    """(address/prefix, sorted flags) of ``dev`` but the link-local ones."""
    found = []
    for entry in ip_json(host, "addr", "show", "dev", dev):
        for info in entry.get("addr_info", []):
            if info.get("scope") == "link":
                continue
            flags = sorted(k for k in ("noprefixroute", "mngtmpaddr", "temporary", "dynamic") if info.get(k))
            found.append(("%s/%s" % (info["local"], info["prefixlen"]), flags))
    return sorted(found)


LAN_LL = "fe80::198:19:1"


@pytest.fixture
def lan_v6(lab):
    """fd00:198:19::1/64 and a link-local address on the LAN's gateway for the test, removed afterwards."""
    added = []
    try:
        for address in (V6_GATEWAY + "/64", LAN_LL + "/64"):
            subprocess.run(["ip", "-n", lab.lan_netns, "addr", "add", address, "dev", "lan0", "nodad"], check=True)
            added.append(address)
        yield LAN_LL
    finally:
        for address in added:
            subprocess.run(["ip", "-n", lab.lan_netns, "addr", "del", address, "dev", "lan0"], check=False)


def shape_commands(shape, lan_ll):
    """The ``ip`` commands that leave eth1 as ``shape`` does."""
    if shape == "networkmanager ipv4 dhcp":  # the reproduction
        return [
            "addr add %s/24 dev eth1 noprefixroute valid_lft 3600 preferred_lft 3600" % ADDR,
            "route add 198.19.0.0/24 dev eth1 proto kernel scope link src %s metric 100" % ADDR,
            "route add default via %s dev eth1 proto dhcp src %s metric 100" % (LAN_GATEWAY, ADDR),
        ]
    if shape == "networkmanager ipv6 ra and dhcpv6":
        return [
            "addr add fd00:198:19::8c0/128 dev eth1 noprefixroute nodad valid_lft 3600 preferred_lft 1800",
            "addr add fd00:198:19::5054:ff:fe00:2/64 dev eth1 noprefixroute mngtmpaddr nodad valid_lft 86400 preferred_lft 14400",
            "route add fd00:198:19::8c0/128 dev eth1 proto kernel metric 100",
            "route add fd00:198:19::/64 dev eth1 proto ra metric 100",
            "route add default via %s dev eth1 proto ra metric 100" % lan_ll,
            "route add fd00:198:77::/64 via %s dev eth1 proto dhcp metric 100" % V6_GATEWAY,
        ]
    if shape == "networkd static":
        return [
            "addr add %s/24 dev eth1 noprefixroute" % ADDR,
            "addr add fd00:198:19::114/64 dev eth1 noprefixroute nodad",
            "route add 198.19.0.0/24 dev eth1 proto static scope link src %s metric 1024" % ADDR,
            "route add fd00:198:19::/64 dev eth1 proto static metric 1024",
            "route add default via %s dev eth1 proto static src %s metric 1024" % (LAN_GATEWAY, ADDR),
            "route add default via %s dev eth1 proto static metric 1024" % V6_GATEWAY,
        ]
    if shape == "dhclient initscripts":
        return [
            "addr add %s/24 brd 198.19.0.255 dev eth1 valid_lft 600 preferred_lft 600" % ADDR,
            "route add default via %s dev eth1 proto boot" % LAN_GATEWAY,
        ]
    if shape == "hand-written onlink and multipath":
        return [
            "addr add %s/32 dev eth1" % ADDR,
            "route add default via %s dev eth1 onlink" % LAN_GATEWAY,
            "route add 198.19.0.0/24 dev eth1 table 100 scope link src %s" % ADDR,
            "route add 198.18.210.0/24 table 100 nexthop via 198.19.0.1 dev eth1 weight 1 nexthop via 198.19.0.2 dev eth1 weight 2",
        ]
    raise AssertionError(shape)


SHAPES = ["networkmanager ipv4 dhcp", "networkmanager ipv6 ra and dhcpv6", "networkd static", "dhclient initscripts",
          "hand-written onlink and multipath"]  # fmt: skip


def prepare(host, shape, lan_ll):
    """eth1 as ``shape`` leaves it (the host's own default route via eth0 goes: eth1 carries the LAN's)."""
    host.run(["sysctl", "-q", "-w", "net.ipv6.conf.eth1.accept_ra=0", "net.ipv6.conf.all.forwarding=0"])
    if "default via %s" % LAN_GATEWAY in " ".join(shape_commands(shape, lan_ll)):
        host.run(["ip", "route", "del", "default"])
    if "ipv6" in shape:  # NetworkManager's ipv6.ip6-privacy: the kernel makes temporary addresses for mngtmpaddr
        host.run(["sysctl", "-q", "-w", "net.ipv6.conf.eth1.use_tempaddr=2", "net.ipv6.conf.default.use_tempaddr=2"])
    host.run(["ip", "-batch", "-"], input="\n".join(shape_commands(shape, lan_ll)) + "\n")
    if "ipv6" in shape:
        assert any("temporary" in flags for _a, flags in addresses(host, "eth1"))


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_moves_to_the_bridge(host, ansible, lan_v6, shape):
    prepare(host, shape, lan_v6)
    routes_before = route_texts(host, "eth1")
    addresses_before = addresses(host, "eth1")
    assert routes_before and addresses_before

    result = run(ansible, host, name="breth0", ports=["eth1"], stp=False, forward_delay=0)
    assert result.get("failed") is not True, result
    assert result["changed"] is True

    # A lease (an address with a lifetime) is said plainly: in a warning and in expiring_addresses.
    leases = [a for a, flags in addresses_before if "dynamic" in flags and "temporary" not in flags]
    assert sorted(e["address"] for e in result["expiring_addresses"]) == sorted(leases)
    assert len([w for w in result.get("warnings", []) if "nothing renews it on breth0" in w]) == len(leases)

    # Every route of eth1 is on breth0 with all its attributes; the addresses keep their flags.
    assert route_texts(host, "breth0") == sorted(r.replace("dev eth1", "dev breth0") for r in routes_before)
    assert route_texts(host, "eth1") == []
    expected = [(a, flags) for a, flags in addresses_before if "temporary" not in flags]
    assert [(a, f) for a, f in addresses(host, "breth0") if "temporary" not in f] == expected
    assert addresses(host, "eth1") == []
    # The LAN gateway answers over the bridge.
    if "ipv6" in shape:
        assert host.run(["ping", "-6", "-n", "-c", "1", "-W", "3", V6_GATEWAY], check=False).returncode == 0
    else:
        assert host.run(["ping", "-n", "-c", "1", "-W", "3", "-I", ADDR, LAN_GATEWAY], check=False).returncode == 0

    again = run(ansible, host, name="breth0", ports=["eth1"], stp=False, forward_delay=0)
    assert again.get("failed") is not True and again["changed"] is False and again["actions"] == [], again


class LanSession:
    """An SSH session from the LAN to the host's eth1 address that prints a line every 50 ms."""

    def __init__(self, host, lab, address=ADDR):
        self.address = address
        hdir = os.path.join(lab.state_dir, "hosts", host.name)
        self.sshd = host.popen(
            ["/usr/sbin/sshd", "-D", "-f", os.path.join(hdir, "sshd_config"), "-o", "ListenAddress=%s" % address,
             "-o", "PidFile=%s" % os.path.join(hdir, "sshd-lan.pid"), "-E", os.path.join(hdir, "sshd-lan.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.proc = None
        self.arrivals = []
        deadline = time.monotonic() + 20
        while len(self.arrivals) < 5:
            assert time.monotonic() < deadline, "the SSH session over eth1 did not start"
            if self.proc is None or self.proc.poll() is not None:
                self._connect(lab)
            time.sleep(0.2)

    def _connect(self, lab):
        argv = ["ip", "netns", "exec", lab.lan_netns, "ssh", "-i", lab.key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3", "root@%s" % self.address,
                "while :; do date +%s.%N; sleep 0.05; done"]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc):
        for _line in proc.stdout:
            self.arrivals.append(time.monotonic())

    def max_gap(self, start, end):
        times = [t for t in self.arrivals if start <= t <= end]
        return max((b - a for a, b in zip(times, times[1:])), default=float("inf"))

    def close(self):
        for proc in (self.proc, self.sshd):
            if proc is not None and proc.poll() is None:
                proc.terminate()
            if proc is not None:
                proc.wait(timeout=10)


def test_reproduction_keeps_an_ssh_session_over_eth1(host, lab, ansible, lan_v6):
    prepare(host, "networkmanager ipv4 dhcp", lan_v6)
    session = LanSession(host, lab)
    try:
        start = time.monotonic()
        result = run(ansible, host, name="breth0", ports=["eth1"], migrate_addresses=True)
        done = time.monotonic()
        assert result.get("failed") is not True, result
        assert [e["address"] for e in result["expiring_addresses"]] == ["%s/24" % ADDR]
        assert any(w.startswith("%s/24 moves from eth1 to breth0 with its lifetime" % ADDR) for w in result["warnings"])
        time.sleep(2)
        assert session.proc.poll() is None, "the SSH session over eth1 ended"
        assert sum(1 for t in session.arrivals if t > done + 1.0) >= 10
        gap = session.max_gap(start, time.monotonic())
        print("longest pause of the SSH session over eth1 during the migration: %.3f s" % gap)
        assert gap < 1.0, "the session stalled for %.2f s" % gap
    finally:
        session.close()
    assert addresses(host, "breth0") == [("%s/24" % ADDR, ["dynamic", "noprefixroute"])]
    assert route_texts(host, "breth0") == [
        "198.19.0.0/24 proto kernel scope link src %s metric 100" % ADDR,
        "default via %s proto dhcp src %s metric 100" % (LAN_GATEWAY, ADDR),
    ]

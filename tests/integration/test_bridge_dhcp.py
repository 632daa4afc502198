"""A DHCP host bridged with kvmhost.bridging.bridge (issue #17): the DHCP client moves to the bridge with its lease.

The host's eth1 is on the lab LAN, whose DHCP server (dnsmasq) gives it
198.19.0.114 with 2-minute leases; dhclient runs as initscripts starts it.
dhclient and its dhclient-script run inside the lab host's own network, mount
and UTS namespaces: its addresses and routes, /etc/resolv.conf (an overlay),
the host name, /run (a tmpfs) and the lease files (/var/lib/dhcp, bound to the
host's own directory) are the host's, never this machine's.

Waiting for leases to run out takes minutes: these tests check what happens
after three lease times, which no shorter wait can show.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import kvmblab
import pytest
from test_bridge import run, wait_for_dad
from test_bridge_routes import LAN_GATEWAY, V6_GATEWAY, LanSession
from test_roles_doctor import DOCTOR
from test_roles_host_bridge import PLAYBOOK, SCRIPTS

pytestmark = pytest.mark.lease_wait  # scheduled first under xdist (tests/integration/conftest.py)
LEASE = 120  # seconds: dnsmasq's shortest lease
# Each test's host gets an address of its own: dnsmasq keeps an address for the MAC that leased it until the lease ends.
_ADDRESSES = []
DHCLIENT = ("dhclient", "-1", "-q", "-lf", "/var/lib/dhcp/dhclient--eth1.lease", "-pf", "/run/dhclient-eth1.pid", "eth1")
ON_BRIDGE = ("dhclient", "-1", "-q", "-lf", "/var/lib/dhcp/dhclient--breth0.lease", "-pf", "/run/dhclient-breth0.pid", "breth0")


def ipv4(host, dev):
    """(address/prefix, valid_lft or None for forever) of ``dev``'s IPv4 addresses."""
    found = []
    for entry in json.loads(host.run(["ip", "-j", "-4", "addr", "show", "dev", dev]).stdout or "[]"):
        for info in entry.get("addr_info", []):
            valid = info.get("valid_life_time")
            found.append(("%s/%s" % (info["local"], info["prefixlen"]), None if valid in (None, 4294967295) else valid))
    return found


def clients(host):
    """The command lines of the dhclient processes in the host's network namespace."""
    found = []
    for pid in kvmblab.netns_pids(host.netns):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = tuple(part.decode() for part in handle.read().rstrip(b"\0").split(b"\0"))
        except OSError:
            continue
        if argv[0].endswith("dhclient"):
            found.append(argv)
    return sorted(found)


@pytest.fixture
def dhcp_host(host, lab):
    """The host with eth1 on DHCP: a fixed address, 2-minute leases, dhclient as initscripts starts it;
    the host's default route is the LAN's (its SSH from the machine runs over eth0's own /30)."""
    mac = json.loads(host.run(["ip", "-j", "link", "show", "eth1"]).stdout)[0]["address"]
    host.lease = "198.19.0.%d" % (20 + len(_ADDRESSES))
    _ADDRESSES.append(host.lease)
    lab.set_dhcp_host(mac, host.lease, LEASE)
    try:
        host.run(["ip", "route", "del", "default"])
        host.run(list(DHCLIENT), timeout=60)
        assert ipv4(host, "eth1")[0][0] == "%s/24" % host.lease
        yield host
    finally:
        lab.set_dhcp_host(mac)


def reaches_the_lan(host):
    return host.run(["ping", "-n", "-c", "1", "-W", "3", LAN_GATEWAY], check=False).returncode == 0


def test_the_client_moves_and_keeps_renewing_on_the_bridge(dhcp_host, lab, ansible):
    host = dhcp_host
    session = LanSession(host, lab, host.lease)
    try:
        start = time.monotonic()
        result = run(ansible, host, name="breth0", ports=["eth1"])
        done = time.monotonic()
        assert result.get("failed") is not True, result
        assert result["actions"][0].startswith("stop dhclient on eth1 (pid ")
        assert result["actions"][-1] == "start dhclient on breth0: %s" % " ".join(ON_BRIDGE)
        assert [c["argv"] for c in result["dhcp_clients"]] == [list(ON_BRIDGE)]
        assert result["expiring_addresses"] == []
        assert not [w for w in result.get("warnings", []) if "renews" in w]
        time.sleep(2)
        assert session.proc.poll() is None, "the SSH session over eth1 ended"
        assert sum(1 for t in session.arrivals if t > done + 1.0) >= 10
        gap = session.max_gap(start, time.monotonic())
        print("longest pause of the SSH session over eth1 while the client moved: %.3f s" % gap)
        assert gap < 1.0, "the session stalled for %.2f s" % gap
        assert clients(host) == [ON_BRIDGE]

        # Three lease times later the host still reaches the LAN: the address is on breth0 only, renewed there.
        time.sleep(3 * LEASE + 10)
        assert reaches_the_lan(host)
        [(address, valid)] = ipv4(host, "breth0")
        assert address == "%s/24" % host.lease and valid is not None and 0 < valid <= LEASE, "not renewed by a client: %r" % valid
        assert ipv4(host, "eth1") == []
        assert clients(host) == [ON_BRIDGE]
        lease = host.read_file("/var/lib/dhcp/dhclient--breth0.lease")
        assert lease.count('interface "breth0";') >= 3, lease  # the bound lease, and the renewals
        assert session.proc.poll() is None, "the SSH session over eth1 ended during the renewals"
    finally:
        session.close()

    # A second run changes nothing, and finds the client on the bridge.
    again = run(ansible, host, name="breth0", ports=["eth1"])
    assert again.get("failed") is not True and again["changed"] is False and again["actions"] == [], again
    assert [c["argv"] for c in again["dhcp_clients"]] == [list(ON_BRIDGE)]
    assert again["expiring_addresses"] == []


def test_rollback_puts_the_client_back_on_the_nic(dhcp_host, ansible):
    host = dhcp_host
    actions = run(ansible, host, check=True, name="breth0", ports=["eth1"])["actions"]
    assert actions[-1].startswith("start dhclient on breth0")
    result = run(ansible, host, environment={"KVMB_TEST_FAIL_AFTER_STEP": str(len(actions))}, name="breth0", ports=["eth1"])
    assert result.get("failed") is True, result
    assert result["restored"] is True and result["differences"] == [] and result["restore_errors"] == [], result

    assert "breth0" not in host.run(["ip", "-o", "link", "show"]).stdout
    assert clients(host) == [DHCLIENT]
    # Past the lease the address was copied with, the client on eth1 has renewed it there.
    time.sleep(LEASE + 30)
    [(address, valid)] = ipv4(host, "eth1")
    assert address == "%s/24" % host.lease and valid is not None and 0 < valid <= LEASE
    assert clients(host) == [DHCLIENT]
    assert reaches_the_lan(host)


def test_doctor_flags_a_client_left_on_the_port_and_the_module_moves_it(dhcp_host, ansible):
    """The state an older bridging leaves: the address on breth0 with its lifetime, dhclient still on eth1."""
    host = dhcp_host
    host.run(["kill", host.read_file("/run/dhclient-eth1.pid").strip()])
    moved = run(ansible, host, name="breth0", ports=["eth1"])
    assert moved.get("failed") is not True and moved["dhcp_clients"] == [], moved
    assert [e["address"] for e in moved["expiring_addresses"]] == ["%s/24" % host.lease]
    assert any("nothing renews it on breth0" in w for w in moved["warnings"])
    host.run(list(DHCLIENT), timeout=60)  # dhclient back on the port, as the host's network scripts would start it
    wait_for_dad(host)  # breth0's link-local address stops being tentative on its own
    before = host.run(["ip", "-o", "addr", "show"]).stdout

    result = ansible.playbook(DOCTOR, hosts=[host], extra_vars={"doctor_network_manager": "stopped"})
    assert result.rc == 0, result.output
    facts = [r["result"]["ansible_facts"] for r in result.results if r["task"].endswith("Check for the common failures")]
    problems = {p["check"]: p for p in facts[-1]["doctor_problems"] if p["check"].startswith("dhcp_")}
    assert sorted(problems) == ["dhcp_expiry", "dhcp_port"], problems
    assert problems["dhcp_port"]["subject"] == "eth1" and " ".join(ON_BRIDGE) in problems["dhcp_port"]["fix"]
    assert problems["dhcp_expiry"]["subject"] == "%s/24 on breth0" % host.lease
    assert "move dhclient from eth1 to breth0" in problems["dhcp_expiry"]["fix"]
    assert result.stats[host.name]["changed"] == 0
    assert [line.split(" valid_lft")[0] for line in host.run(["ip", "-o", "addr", "show"]).stdout.splitlines()] == [
        line.split(" valid_lft")[0] for line in before.splitlines()
    ]  # the doctor changed nothing (lifetimes run on)

    # The module moves the client it finds on the port; then the doctor finds nothing.
    fixed = run(ansible, host, name="breth0", ports=["eth1"])
    assert fixed.get("failed") is not True and fixed["changed"] is True, fixed
    assert [c["argv"] for c in fixed["dhcp_clients"]] == [list(ON_BRIDGE)]
    assert clients(host) == [ON_BRIDGE]
    result = ansible.playbook(DOCTOR, hosts=[host], extra_vars={"doctor_network_manager": "stopped"})
    facts = [r["result"]["ansible_facts"] for r in result.results if r["task"].endswith("Check for the common failures")]
    assert [p for p in facts[-1]["doctor_problems"] if p["check"].startswith("dhcp_")] == []


def test_the_guides_reproduction_with_the_host_bridge_playbook(dhcp_host, lab, ansible):
    """Issue #17 as reported: a network-scripts host whose eth1 is DHCP, bridged by playbooks/host_bridge.yml."""
    host = dhcp_host
    mac = json.loads(host.run(["ip", "-j", "link", "show", "eth1"]).stdout)[0]["address"]
    host.write_file(SCRIPTS + "/ifcfg-eth1", "DEVICE=eth1\nTYPE=Ethernet\nHWADDR=%s\nBOOTPROTO=dhcp\nONBOOT=yes\n" % mac)
    extra = {"host_bridge_nic": "eth1", "host_bridge_name": "breth0"}
    session = LanSession(host, lab, host.lease)
    try:
        start = time.monotonic()
        result = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra)
        assert result.rc == 0, result.output
        gap = session.max_gap(start, time.monotonic())
        print("longest pause of the SSH session over eth1 during the play: %.3f s" % gap)
        assert gap < 1.0, "the session stalled for %.2f s" % gap
        assert clients(host) == [ON_BRIDGE]
        bridge = host.read_file(SCRIPTS + "/ifcfg-breth0")
        assert "BOOTPROTO=dhcp" in bridge.splitlines(), bridge

        time.sleep(3 * LEASE + 10)
        assert reaches_the_lan(host)
        [(address, valid)] = ipv4(host, "breth0")
        assert address == "%s/24" % host.lease and valid is not None and 0 < valid <= LEASE
        assert ipv4(host, "eth1") == []
        assert clients(host) == [ON_BRIDGE]
        assert session.proc.poll() is None, "the SSH session over eth1 ended"
    finally:
        session.close()

    again = ansible.playbook(PLAYBOOK, hosts=[host], extra_vars=extra)
    assert again.rc == 0, again.output
    assert again.stats[host.name]["changed"] == 0, again.output
    assert clients(host) == [ON_BRIDGE]


# -- DHCPv6 --------------------------------------------------------------------------------------------------
DHCLIENT6 = ("dhclient", "-6", "-1", "-q", "-lf", "/var/lib/dhcp/dhclient6--eth1.lease", "-pf", "/run/dhclient6-eth1.pid", "eth1")
ON_BRIDGE6 = ("dhclient", "-6", "-1", "-q", "-lf", "/var/lib/dhcp/dhclient6--breth0.lease", "-pf", "/run/dhclient6-breth0.pid", "breth0")


@pytest.fixture
def dhcpv6_server(lab):
    """A DHCPv6 server on the LAN (fd00:198:19::/64, 2-minute leases), a dnsmasq of its own, stopped afterwards."""
    lan = ["ip", "-n", lab.lan_netns, "addr"]
    state = os.path.join(lab.state_dir, "dnsmasq6")
    os.makedirs(state, exist_ok=True)
    argv = ["ip", "netns", "exec", lab.lan_netns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--no-resolv", "--no-hosts", "--bind-interfaces", "--interface=lan0", "--except-interface=lo",
            "--dhcp-range=fd00:198:19::100,fd00:198:19::1ff,64,%d" % LEASE, "--dhcp-authoritative",
            "--dhcp-leasefile=%s" % os.path.join(state, "leases"), "--log-facility=%s" % os.path.join(state, "log"), "--log-dhcp"]  # fmt: skip
    server = None
    try:
        subprocess.run([*lan, "add", V6_GATEWAY + "/64", "dev", "lan0", "nodad"], check=True)
        server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.5)  # dnsmasq checks its options at once
        assert server.poll() is None, "the DHCPv6 dnsmasq did not start; see %s" % os.path.join(state, "log")
        yield
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run([*lan, "del", V6_GATEWAY + "/64", "dev", "lan0"], check=False)


def ipv6_global(host, dev):
    found = []
    for entry in json.loads(host.run(["ip", "-j", "-6", "addr", "show", "dev", dev, "scope", "global"]).stdout or "[]"):
        for info in entry.get("addr_info", []):
            if "local" not in info:
                continue  # ip -j lists the addresses the scope filter left out as {}
            valid = info.get("valid_life_time")
            found.append(("%s/%s" % (info["local"], info["prefixlen"]), None if valid in (None, 4294967295) else valid))
    return found


def test_a_dhcpv6_client_moves_the_same_way(host, ansible, dhcpv6_server):
    wait_for_dad(host)
    host.run(list(DHCLIENT6), timeout=90)
    [(leased, valid)] = ipv6_global(host, "eth1")
    assert leased.endswith("/128") and valid is not None

    result = run(ansible, host, name="breth0", ports=["eth1"])
    assert result.get("failed") is not True, result
    assert result["actions"][0].startswith("stop dhclient on eth1 (pid ")
    assert result["actions"][-1] == "start dhclient on breth0: %s" % " ".join(ON_BRIDGE6)
    assert [(c["family"], c["argv"]) for c in result["dhcp_clients"]] == [("ipv6", list(ON_BRIDGE6))]
    assert result["expiring_addresses"] == []
    assert clients(host) == [ON_BRIDGE6]
    assert [a for a, _valid in ipv6_global(host, "breth0")] == [leased]
    assert ipv6_global(host, "eth1") == []

    # After a lease time, the address is still on breth0, renewed there by the client that moved (same DUID).
    time.sleep(LEASE + 15)
    [(address, valid)] = ipv6_global(host, "breth0")
    assert address == leased and valid is not None and 0 < valid <= LEASE
    assert ipv6_global(host, "eth1") == []
    assert clients(host) == [ON_BRIDGE6]
    again = run(ansible, host, name="breth0", ports=["eth1"])
    assert again.get("failed") is not True and again["changed"] is False, again

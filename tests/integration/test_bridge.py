"""kvmhost.bridging.bridge against real lab hosts: the kernel state is read back after every run.

Covered: create, idempotent re-run, option changes, ports_exclusive, diff, check
mode (kernel untouched), absent; moving eth0 (the NIC carrying SSH and the
default route) into a bridge while an SSH session keeps printing; an injected
failure midway (KVMB_TEST_FAIL_AFTER_STEP) that restores the exact previous
state; every rejected input, each with the kernel left as it was.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

MODULE = "kvmhost.bridging.bridge"


# -- reading the host's kernel ---------------------------------------------------
def ip_json(host, *argv):
    return json.loads(host.run(["ip", "-j", *argv]).stdout or "[]")


def links(host):
    return {link["ifname"]: link for link in ip_json(host, "-d", "link", "show")}


def addresses(host, dev, family="inet", with_link_local=False):
    found = []
    for entry in ip_json(host, "addr", "show", "dev", dev):
        for info in entry.get("addr_info", []):
            if info["family"] == family and (with_link_local or info.get("scope") != "link"):
                found.append("%s/%s" % (info["local"], info["prefixlen"]))
    return found


def default_route(host):
    routes = ip_json(host, "-4", "route", "show", "default")
    assert len(routes) == 1, routes
    return routes[0]


def wait_for_dad(host, timeout=10):
    """Wait until no IPv6 address is tentative: a fresh link's link-local address (and its local route) comes late."""
    deadline = time.monotonic() + timeout
    while any(info.get("tentative") for entry in ip_json(host, "addr", "show") for info in entry.get("addr_info", [])):
        assert time.monotonic() < deadline, "IPv6 duplicate address detection did not finish"
        time.sleep(0.1)


def kernel_state(host):
    """Links (kind, master, up, MAC, MTU, bridge options), addresses and all routes of both families, all tables."""
    wait_for_dad(host)
    state = {"links": {}, "addresses": {}, "routes": []}
    for name, link in links(host).items():
        info = link.get("linkinfo", {})
        data = info.get("info_data", {}) if info.get("info_kind") == "bridge" else {}
        state["links"][name] = {
            "kind": info.get("info_kind"),
            "master": link.get("master"),
            "up": "UP" in link.get("flags", []),
            "mac": link.get("address"),
            "mtu": link.get("mtu"),
            "bridge": {k: data.get(k) for k in ("forward_delay", "hello_time", "max_age", "ageing_time", "stp_state", "priority")},
        }
    for entry in ip_json(host, "addr", "show"):
        state["addresses"][entry["ifname"]] = sorted("%s/%s" % (a["local"], a["prefixlen"]) for a in entry.get("addr_info", []))
    for family in ("-4", "-6"):
        for route in ip_json(host, family, "route", "show", "table", "all"):
            route.pop("expires", None)
            state["routes"].append(json.dumps(route, sort_keys=True))
    state["routes"].sort()
    return state


def ssh_argv(host, command):
    return [
        "ssh",
        "-i",
        host.lab.key,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=5",
        "root@%s" % host.address,
        command,
    ]


class PrintingSession:
    """An SSH session to the host over eth0 that prints a line every 50 ms; records when each line arrives."""

    def __init__(self, host):
        self.proc = subprocess.Popen(
            ssh_argv(host, "while :; do date +%s.%N; sleep 0.05; done"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.arrivals = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 10
        while len(self.arrivals) < 5:
            assert time.monotonic() < deadline, "the printing SSH session did not start"
            assert self.proc.poll() is None, "the printing SSH session ended at once"
            time.sleep(0.05)

    def _read(self):
        for _line in self.proc.stdout:
            self.arrivals.append(time.monotonic())

    def lines_after(self, moment):
        return sum(1 for t in self.arrivals if t > moment)

    def max_gap(self, start, end):
        times = [t for t in self.arrivals if start <= t <= end]
        return max((b - a for a, b in zip(times, times[1:])), default=float("inf"))

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=5)


@pytest.fixture
def session(host):
    opened = []

    def open_session():
        opened.append(PrintingSession(host))
        return opened[-1]

    yield open_session
    for item in opened:
        item.close()


def run(ansible, host, check=False, diff=False, environment=None, **args):
    """Run the module once on ``host``; the result dict gets ``failed`` from the task's status.

    (ansible-core 2.19 no longer keeps ``failed`` in the result a callback sees,
    so the status the recording callback wrote is the reliable source.)
    """
    task = {"name": "under test", MODULE: args}
    if environment:
        task["environment"] = environment
    if check:
        task["check_mode"] = True
    if diff:
        task["diff"] = True
    play = [{"hosts": host.name, "gather_facts": False, "tasks": [task]}]
    outcome = ansible.playbook(json.dumps(play, indent=1) + "\n")
    records = [r for r in outcome.results if r["host"] == host.name and r["task"] == "under test"]
    assert records, "no result for %s on %s; ansible said:\n%s" % (MODULE, host.name, outcome.output)
    result = dict(records[-1]["result"])
    result["failed"] = records[-1]["status"] == "failed"
    return result


# -- create, re-run, change, diff, absent ---------------------------------------------
def test_create_rerun_change_and_remove(host, ansible):
    guest = host.add_guest()  # vnet0, on no bridge yet
    eth1_mac = links(host)["eth1"]["address"]

    result = run(ansible, host, diff=True, name="breth1", ports=["eth1", "vnet0"], stp=False, forward_delay=0)
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    now = links(host)
    bridge = now["breth1"]
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert bridge["linkinfo"]["info_data"]["forward_delay"] == 0
    assert bridge["linkinfo"]["info_data"]["stp_state"] == 0
    assert "UP" in bridge["flags"]
    assert bridge["address"] == eth1_mac  # mac: inherit, from the first port that is not a tap
    assert now["eth1"]["master"] == "breth1" and now["vnet0"]["master"] == "breth1"
    assert result["diff"]["before"] == {"name": "breth1", "state": "absent"}
    assert result["diff"]["after"]["ports"] == ["eth1", "vnet0"]
    assert result["bridge"]["mac"] == eth1_mac and result["bridge"]["forward_delay"] == 0
    # The bridge really forwards: the guest gets a lease from the LAN's DHCP server.
    lease = guest.dhcp()
    assert lease is not None and lease.startswith("198.19.0.")

    again = run(ansible, host, name="breth1", ports=["eth1", "vnet0"], stp=False, forward_delay=0)
    assert again["changed"] is False and again["actions"] == []

    before = kernel_state(host)
    changed = run(
        ansible, host, diff=True, name="breth1", ports=["eth1"], ports_exclusive=True, stp=True, forward_delay=4, hello_time=1, priority=4096, mtu=1400
    )
    assert changed["changed"] is True, changed
    data = links(host)["breth1"]["linkinfo"]["info_data"]
    assert (data["stp_state"], data["forward_delay"], data["hello_time"], data["priority"]) == (1, 400, 100, 4096)
    assert links(host)["breth1"]["mtu"] == 1400
    assert "master" not in links(host)["vnet0"]  # ports_exclusive detached it
    assert changed["diff"]["before"]["ports"] == ["eth1", "vnet0"] and changed["diff"]["after"]["ports"] == ["eth1"]
    assert kernel_state(host) != before
    assert (
        run(ansible, host, name="breth1", ports=["eth1"], ports_exclusive=True, stp=True, forward_delay=4, hello_time=1, priority=4096, mtu=1400)["changed"]
        is False
    )

    # STP off and a zero delay again: the order of the two changes matters to the kernel.
    back = run(ansible, host, name="breth1", ports=["eth1"], stp=False, forward_delay=0)
    assert back["changed"] is True, back
    data = links(host)["breth1"]["linkinfo"]["info_data"]
    assert (data["stp_state"], data["forward_delay"]) == (0, 0)

    gone = run(ansible, host, diff=True, name="breth1", state="absent")
    assert gone["changed"] is True
    assert "breth1" not in links(host)
    assert "master" not in links(host)["eth1"]
    assert gone["diff"]["after"] == {"name": "breth1", "state": "absent"}
    assert run(ansible, host, name="breth1", state="absent")["changed"] is False


def test_check_mode_leaves_the_kernel_untouched(host, ansible):
    before = kernel_state(host)
    result = run(ansible, host, check=True, diff=True, name="breth0", ports=["eth0"], forward_delay=0)
    assert result["changed"] is True
    actions = result["actions"]
    assert actions[0].startswith("create bridge breth0")
    assert actions.index("add %s/30 to breth0 (from eth0)" % host.address) < actions.index("attach eth0 to breth0")
    assert any(a.startswith("move route 'default via %s dev eth0" % host.peer_address) for a in actions)
    assert actions[-1] == "remove %s/30 from eth0" % host.address
    after = result["diff"]["after"]
    assert after["addresses"] == ["%s/30" % host.address]
    assert after["port_addresses"] == {"eth0": []}
    assert any(r.startswith("default via %s dev breth0" % host.peer_address) for r in after["routes"])
    assert after["mac"] == links(host)["eth0"]["address"]
    assert kernel_state(host) == before


# -- the migration that must not lose the host ------------------------------------------
def test_migrating_eth0_keeps_the_ssh_session(host, ansible, session):
    eth0_mac = links(host)["eth0"]["address"]
    printing = session()
    start = time.monotonic()
    result = run(ansible, host, name="breth0", ports=["eth0"], stp=False, forward_delay=0)
    done = time.monotonic()
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    time.sleep(2)

    # The old session goes on printing, without a stall.
    assert printing.proc.poll() is None, "the SSH session over eth0 ended"
    assert printing.lines_after(done + 1.0) >= 10
    gap = printing.max_gap(start, time.monotonic())
    assert gap < 1.0, "the session stalled for %.2f s" % gap
    print("longest pause of the printing session during the migration: %.3f s" % gap)

    # The kernel: the bridge has the NIC's MAC and address, the default route, and eth0 is its port.
    now = links(host)
    assert now["eth0"]["master"] == "breth0"
    assert now["breth0"]["address"] == eth0_mac
    assert addresses(host, "breth0") == ["%s/30" % host.address]
    assert addresses(host, "eth0") == []
    route = default_route(host)
    assert (route["dev"], route["gateway"]) == ("breth0", host.peer_address)

    # New sessions connect.
    fresh = subprocess.run(ssh_argv(host, "ip -j route show default"), capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(fresh.stdout)[0]["dev"] == "breth0"
    again = run(ansible, host, name="breth0", ports=["eth0"], stp=False, forward_delay=0)
    assert again["changed"] is False and again["actions"] == []

    # The bridge now carries the connection: removing it is refused, and nothing changes.
    before = kernel_state(host)
    refused = run(ansible, host, name="breth0", state="absent")
    assert refused.get("failed") is True
    assert "Refusing to remove bridge breth0" in refused["msg"] and host.address in refused["msg"]
    assert kernel_state(host) == before
    assert printing.proc.poll() is None


def _step_of(actions, prefix):
    return next(i for i, a in enumerate(actions, 1) if a.startswith(prefix))


@pytest.mark.parametrize("where", ["attach eth0", "move route 'default", "last"])
def test_failure_midway_restores_the_previous_state(host, ansible, session, where):
    args = {"name": "breth0", "ports": ["eth0"], "forward_delay": 0}
    actions = run(ansible, host, check=True, **args)["actions"]
    step = len(actions) if where == "last" else _step_of(actions, where)
    before = kernel_state(host)
    printing = session()
    start = time.monotonic()

    result = run(ansible, host, environment={"KVMB_TEST_FAIL_AFTER_STEP": str(step)}, **args)
    assert result.get("failed") is True, result
    assert result["failed_step"] == step
    assert result["restored"] is True and result["differences"] == [] and result["restore_errors"] == []
    assert "failure injected after step %d" % step in result["msg"]
    assert "previous runtime state was restored" in result["msg"]
    assert result["changed"] is False
    assert result["actions"] == actions[:step]

    # Exactly as before: no bridge, eth0 with its address, routes back on eth0.
    assert kernel_state(host) == before
    assert "breth0" not in links(host)
    assert addresses(host, "eth0") == ["%s/30" % host.address]
    assert default_route(host)["dev"] == "eth0"
    assert printing.proc.poll() is None, "the SSH session died during the failure and the restore"
    # It kept printing through the failure and the restore, without a stall, and prints on afterwards.
    done = time.monotonic()
    time.sleep(2)
    assert printing.lines_after(done + 1.0) >= 10
    gap = printing.max_gap(start, time.monotonic())
    assert gap < 1.0, "the session stalled for %.2f s during the failure and the restore" % gap


def test_bad_test_hook_value_is_refused(host, ansible):
    before = kernel_state(host)
    result = run(ansible, host, environment={"KVMB_TEST_FAIL_AFTER_STEP": "soon"}, name="breth1", ports=["eth1"])
    assert result.get("failed") is True and "KVMB_TEST_FAIL_AFTER_STEP" in result["msg"]
    assert kernel_state(host) == before


# -- bad input: a clear error, nothing changed ---------------------------------------------
def _other_bridge(host):
    host.run(["ip", "link", "add", "brother", "type", "bridge"])
    host.run(["ip", "link", "set", "eth1", "master", "brother"])


def _bridge_with_macvlan(host):
    host.run(["ip", "link", "add", "breth1", "type", "bridge"])
    host.run(["ip", "link", "add", "mv0", "link", "breth1", "type", "macvlan"])


def _veth_pair(host):
    host.run(["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"])


def _migrated(ansible):
    def setup(host):
        result = run(ansible, host, name="breth0", ports=["eth0"])
        assert result["changed"] is True and result.get("failed") is not True, result

    return setup


BAD_INPUTS = {
    "missing port": (None, {"name": "breth1", "ports": ["eth1", "eth9"]}, "Port eth9 does not exist"),
    "port of another bridge": (_other_bridge, {"name": "breth1", "ports": ["eth1"]}, "eth1 is already a port of brother (a bridge)"),
    "bridge as its own port": (None, {"name": "breth1", "ports": ["eth1", "breth1"]}, "breth1 cannot be a port of itself"),
    "a bridge as port": (_other_bridge, {"name": "breth1", "ports": ["brother"]}, "brother is itself a bridge"),
    "loop through a device on the bridge": (_bridge_with_macvlan, {"name": "breth1", "ports": ["eth1", "mv0"]}, "mv0 sits on top of breth1"),
    "both ends of a veth pair": (_veth_pair, {"name": "breth1", "ports": ["va", "vb"]}, "two ends of one veth pair"),
    "lo as port": (None, {"name": "breth1", "ports": ["lo"]}, "lo is the loopback interface"),
    "name with a slash": (None, {"name": "br/0", "ports": ["eth1"]}, "bridge name 'br/0' is not a valid interface name: it contains '/'"),
    "name too long": (None, {"name": "b" * 16, "ports": ["eth1"]}, "longer than 15 bytes"),
    "port name with a space": (None, {"name": "breth1", "ports": ["eth 1"]}, "port name 'eth 1' is not a valid interface name: it contains white space"),
    "multicast mac": (None, {"name": "breth1", "ports": ["eth1"], "mac": "01:00:5e:00:00:01"}, "multicast"),
    "name of a NIC": (None, {"name": "eth1", "ports": []}, "eth1 exists and is a veth link, not a bridge"),
    "stp with zero delay": (None, {"name": "breth1", "ports": ["eth1"], "stp": True, "forward_delay": 0}, "does not work with STP on"),
    "connection NIC without migration": (None, {"name": "breth0", "ports": ["eth0"], "migrate_addresses": False}, "Refusing to make eth0 a port of breth0"),
    "absent while carrying the connection": ("migrated", {"name": "breth0", "state": "absent"}, "Refusing to remove bridge breth0"),
    "detaching the uplink of the connection": (
        "migrated+guest",
        {"name": "breth0", "ports": ["vnet0"], "ports_exclusive": True},
        "Refusing to detach eth0 from breth0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_with_nothing_changed(host, ansible, case):
    setup, args, message = BAD_INPUTS[case]
    if setup == "migrated+guest":
        _migrated(ansible)(host)
        host.add_guest(bridge="breth0")
        setup = None
    elif setup == "migrated":
        setup = _migrated(ansible)
    if setup:
        setup(host)
    before = kernel_state(host)
    result = run(ansible, host, **args)
    assert result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert result.get("changed") is not True
    assert kernel_state(host) == before

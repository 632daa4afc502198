"""_dhcp_client: command lines of DHCP clients, their move to the bridge, and the bridge plan around them."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from socket import AF_INET, AF_INET6

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _bridge_plan as bp
from ansible_collections.kvmhost.bridging.plugins.module_utils import _dhcp_client as dc
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

INITSCRIPTS = ("/sbin/dhclient", "-1", "-q", "-lf", "/var/lib/dhclient/dhclient--eth1.lease", "-pf", "/var/run/dhclient-eth1.pid", "eth1")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (INITSCRIPTS, ("dhclient", "eth1", AF_INET, "/var/run/dhclient-eth1.pid", "/var/lib/dhclient/dhclient--eth1.lease")),
        (("dhclient", "-6", "-pf", "/run/dhclient6.eth1.pid", "-lf", "/var/lib/dhcp/dhclient6.eth1.leases", "eth1"),
         ("dhclient", "eth1", AF_INET6, "/run/dhclient6.eth1.pid", "/var/lib/dhcp/dhclient6.eth1.leases")),
        (("dhclient", "eth1"), ("dhclient", "eth1", AF_INET, None, "/var/lib/dhcp/dhclient.leases")),
        (("dhcpcd", "-q", "-b", "eth1"), ("dhcpcd", "eth1", AF_INET, None, "/var/lib/dhcpcd/eth1.lease")),
        (("dhcpcd", "-6", "eth1"), ("dhcpcd", "eth1", AF_INET6, None, "/var/lib/dhcpcd/eth16.lease")),
        (("/sbin/udhcpc", "-R", "-n", "-p", "/run/udhcpc.eth1.pid", "-i", "eth1", "-x", "hostname:h1"),
         ("udhcpc", "eth1", AF_INET, "/run/udhcpc.eth1.pid", None)),
    ],
)  # fmt: skip
def test_parse_client(argv, expected):
    client = dc.parse_client(argv, 42)
    assert (client.name, client.interface, client.family, client.pidfile, client.leasefile) == expected
    assert client.pid == 42 and client.argv == tuple(argv)


@pytest.mark.parametrize(
    "argv",
    [(), ("sshd", "-D"), ("dhclient",), ("dhclient", "eth0", "eth1"), ("dhcpcd",), ("udhcpc", "-f"), ("udhcpc", "-f", "-i"), ("dhclient-script",)],
)
def test_not_a_client_of_one_interface(argv):
    assert dc.parse_client(argv) is None


def test_moved_argv_names_the_bridge_and_its_files():
    client = dc.parse_client(INITSCRIPTS, 42)
    assert dc.moved_argv(client, "breth0") == (
        "/sbin/dhclient", "-1", "-q", "-lf", "/var/lib/dhclient/dhclient--breth0.lease", "-pf", "/var/run/dhclient-breth0.pid", "breth0",
    )  # fmt: skip
    assert dc.lease_move(client, "breth0") == ("/var/lib/dhclient/dhclient--eth1.lease", "/var/lib/dhclient/dhclient--breth0.lease")
    # A name that only contains the interface's name is left alone (eth10 is not eth1).
    other = dc.parse_client(("dhclient", "-pf", "/run/eth10-and-eth1.pid", "-e", "IF_METRIC=100", "eth1"), 1)
    assert dc.moved_argv(other, "br0") == ("dhclient", "-pf", "/run/eth10-and-br0.pid", "-e", "IF_METRIC=100", "br0")


def test_moved_argv_udhcpc_and_dhcpcd():
    udhcpc = dc.parse_client(("udhcpc", "-i", "eth1", "-p", "/run/udhcpc.eth1.pid", "-f"), 1)
    assert dc.moved_argv(udhcpc, "breth0") == ("udhcpc", "-i", "breth0", "-p", "/run/udhcpc.breth0.pid", "-f")
    assert udhcpc.foreground and dc.lease_move(udhcpc, "breth0") is None
    dhcpcd = dc.parse_client(("dhcpcd", "-4", "eth1"), 1)
    assert dc.moved_argv(dhcpcd, "breth0") == ("dhcpcd", "-4", "breth0")
    assert dc.lease_move(dhcpcd, "breth0") == ("/var/lib/dhcpcd/eth1.lease", "/var/lib/dhcpcd/breth0.lease")


LEASE = """lease {
  interface "eth1";
  fixed-address 198.19.0.195;
  option routers 198.19.0.1;
  expire 6 2026/11/28 05:36:54;
}
lease {
  interface "eth2";
  fixed-address 198.19.9.5;
}
"""


def test_lease_content_names_the_new_interface():
    text = dc.lease_content("dhclient", LEASE.encode(), "eth1", "breth0").decode()
    assert 'interface "breth0";' in text and 'interface "eth1";' not in text
    assert "fixed-address 198.19.0.195;" in text and 'interface "eth2";' in text
    assert dc.lease_content("dhcpcd", b"\x01\x02", "eth1", "breth0") == b"\x01\x02"
    v6 = 'default-duid "\\000\\001\\000\\001";\nlease6 {\n  interface "eth1";\n  ia-na 1c:2d:3e:4f {\n  }\n}\n'
    assert dc.lease_content("dhclient", v6.encode(), "eth1", "breth0").decode() == v6.replace('"eth1"', '"breth0"')


def test_find_clients_reads_proc_in_this_network_namespace_only(tmp_path):
    def process(pid, argv, netns="net:[4026531840]"):
        (tmp_path / str(pid) / "ns").mkdir(parents=True)
        (tmp_path / str(pid) / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (tmp_path / str(pid) / "ns" / "net").symlink_to(netns)

    process(10, INITSCRIPTS)
    process(11, ("dhclient", "eth0"))
    process(12, ("sshd", "-D"))
    process(13, ())
    process(14, ("dhclient", "eth1"), netns="net:[4026532999]")  # a client in another namespace (a container, a lab host)
    process("self", ())
    found = dc.find_clients(["eth1", "breth0"], proc=str(tmp_path))
    assert [(c.pid, c.interface) for c in found] == [(10, "eth1")]


def test_stop_client_ends_exactly_that_command_line():
    marker = "kvmb-dhcp-test-%s" % uuid.uuid4().hex
    argv = (sys.executable, "-c", "import time; time.sleep(120)", marker)
    proc = subprocess.Popen(argv)
    try:
        for _attempt in range(200):  # until the child has exec'd python
            with open("/proc/%d/cmdline" % proc.pid, "rb") as handle:
                if handle.read().rstrip(b"\0").split(b"\0")[-1] == marker.encode():
                    break
            time.sleep(0.05)
        assert dc.stop_client(argv) == [proc.pid]
        assert proc.wait(timeout=10) == -15
        assert dc.stop_client(argv) == []  # nothing left: no error
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_start_client_refuses_what_is_no_client():
    with pytest.raises(ModuleError, match="not a DHCP client command line"):
        dc.start_client(("sleep", "1"))


class FakeModule:
    """atomic_move for the lease copy; run_command records what it was asked to run and answers ``answer``."""

    def __init__(self, answer=(0, "", "")):
        self.answer, self.ran = answer, []

    def atomic_move(self, src, dst, unsafe_writes=False):
        os.replace(src, dst)

    def run_command(self, args, executable=None, **kwargs):
        self.ran.append((list(args), executable))
        return self.answer


def test_start_client_carries_the_lease_over(tmp_path):
    old, new = tmp_path / "dhclient--eth1.lease", tmp_path / "dhclient--breth0.lease"
    old.write_text(LEASE)
    module = FakeModule()
    argv = ("/sbin/dhclient", "-1", "-lf", str(new), "breth0")
    dc.start_client(argv, lease=(str(old), str(new)), module=module, old="eth1", new="breth0")
    assert module.ran == [(list(argv), "/sbin/dhclient")]
    assert 'interface "breth0";' in new.read_text() and old.read_text() == LEASE


def test_start_client_keeps_the_planned_argv0_and_runs_the_program_it_names(monkeypatch):
    monkeypatch.setattr(dc, "_executable", lambda name: "/usr/sbin/" + name)
    module = FakeModule()
    dc.start_client(("dhclient", "-1", "breth0"), module=module)
    assert module.ran == [(["dhclient", "-1", "breth0"], "/usr/sbin/dhclient")]


def test_start_client_failure_says_what_the_client_said():
    module = FakeModule((2, "No DHCPOFFERS received.\n", ""))
    with pytest.raises(ModuleError, match=r"failed \(exit 2\): No DHCPOFFERS received."):
        dc.start_client(("/sbin/dhclient", "-1", "breth0"), module=module)


# -- the bridge plan around a client --------------------------------------------------------------
def lease_snapshot(on="eth1"):
    links = [ks.Link(1, "lo", loopback=True, up=True), ks.Link(3, "eth1", mac="52:54:00:00:00:02", up=True)]
    addresses = [ks.Address(on, AF_INET, "198.19.0.114", 24, local="198.19.0.114", broadcast="198.19.0.255", valid=120, preferred=120)]
    routes = [
        ks.Route(AF_INET, dst="198.19.0.0", dst_len=24, proto=2, scope=253, dev=on, prefsrc="198.19.0.114"),
        ks.Route(AF_INET, proto=3, dev=on, gateway="198.19.0.1"),
    ]
    return ks.Snapshot(links, addresses, routes)


def spec():
    params = {"name": "breth0", "state": "present", "ports": ["eth1"], "ports_exclusive": False, "mac": "inherit",
              "migrate_addresses": True, "up": True, "force": False, "mtu": None}  # fmt: skip
    params.update(dict.fromkeys(ks.BRIDGE_OPTION_NAMES))
    return bp.BridgeSpec.from_params(params)


def test_plan_moves_the_client_first_off_the_port_and_last_onto_the_bridge():
    client = dc.parse_client(INITSCRIPTS, 42)
    plan = bp.plan_bridge(lease_snapshot(), spec(), (), [client])
    assert plan.actions[0] == "stop dhclient on eth1 (pid 42)"
    assert plan.actions[-1] == (
        "start dhclient on breth0: /sbin/dhclient -1 -q -lf /var/lib/dhclient/dhclient--breth0.lease -pf /var/run/dhclient-breth0.pid breth0"
    )
    assert plan.warnings == []  # the lease is renewed on the bridge
    stop, start = plan.steps[0], plan.steps[-1]
    assert stop.undo == (("start_dhcp_client", {"argv": INITSCRIPTS}),)
    assert start.args["lease"] == ("/var/lib/dhclient/dhclient--eth1.lease", "/var/lib/dhclient/dhclient--breth0.lease")
    assert start.undo == (("stop_dhcp_client", {"argv": start.args["argv"]}),)
    # Once moved: the client runs on the bridge, and nothing is left to do.
    moved = dc.parse_client(start.args["argv"], 43)
    after = bp.simulate(lease_snapshot(), plan.steps)
    assert bp.plan_bridge(after, spec(), (), [moved]).steps == []
    # The address goes to the bridge without the old lease's remaining time: the client sets it at its renewal.
    added = next(s.args["address"] for s in plan.steps if s.op == "add_address")
    assert (added.dev, added.valid, added.preferred) == ("breth0", None, None)
    assert bp.expiring_addresses(after, "breth0", [moved]) == []
    leased = ks.Snapshot(after.links.values(), [dataclasses.replace(added, valid=60, preferred=60)], after.routes)
    assert bp.expiring_addresses(leased, "breth0", [moved]) == []
    assert bp.expiring_addresses(leased, "breth0") == [{"address": "198.19.0.114/24", "valid_lft": 60, "preferred_lft": 60}]


def test_a_client_of_the_other_family_leaves_the_warning():
    client = dc.parse_client(("dhclient", "-6", "eth1"), 42)
    plan = bp.plan_bridge(lease_snapshot(), spec(), (), [client])
    assert len(plan.warnings) == 1 and "nothing renews it on breth0" in plan.warnings[0]


def test_no_client_moves_without_migrate_addresses():
    client = dc.parse_client(INITSCRIPTS, 42)
    params = spec()
    params.migrate_addresses = False
    plan = bp.plan_bridge(lease_snapshot(), params, (), [client])
    assert not [s for s in plan.steps if "dhcp" in s.op]


def test_link_local_ready_reads_proc_net_if_inet6(tmp_path):
    table = tmp_path / "if_inet6"
    table.write_text(
        "fe80000000000000505400fffe000002 04 40 20 c0   breth0\n"  # tentative
        "fe80000000000000505400fffe000002 03 40 20 80     eth1\n"
        "fd000198001900000000000000000114 03 80 00 80     eth1\n"
    )
    assert dc.link_local_ready("eth1", path=str(table)) is True
    assert dc.link_local_ready("breth0", path=str(table)) is False
    assert dc.link_local_ready("eth9", path=str(table)) is False
    assert dc.link_local_ready("eth1", path=str(tmp_path / "missing")) is False

"""kvmhost.bridging.bridge_info against real lab hosts, checked against ip -d -j and /proc."""

from __future__ import annotations

import json
import time

from test_tap import Holder, link, make_bridge, module, ok  # helpers of the tap tests

MODULE = "kvmhost.bridging.bridge_info"


def info(ansible, host, check=False):
    task = {"name": "under test", MODULE: {}, "check_mode": check}
    played = ansible.playbook(json.dumps([{"hosts": host.name, "gather_facts": False, "tasks": [task]}]) + "\n")
    records = [r for r in played.results if r["host"] == host.name and r["task"] == "under test"]
    assert records, played.output
    assert records[-1]["status"] == "ok", records[-1]["result"].get("msg")
    return records[-1]["result"]


def settled_ports(host, bridge, timeout=10.0):
    """Wait for the kernel's linkwatch to apply carrier changes: the ports' states read equal twice, 0.5 s apart.

    A tap that a process just opened gets its carrier, and its port leaves
    "disabled", asynchronously; on a loaded machine that can take a second.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        out = json.loads(host.run(["ip", "-j", "-d", "link", "show", "master", bridge]).stdout)
        now = {rec["ifname"]: (rec["linkinfo"]["info_slave_data"]["state"], "NO-CARRIER" in rec["flags"]) for rec in out}
        if now == last:
            return now
        last = now
        time.sleep(0.5)
    return last


def sysctl(host, path):
    text = host.read_file("/proc/sys/" + path)
    return None if text is None else int(text)


def test_what_bridges_ports_and_taps_are(lab, host, ansible):
    other = lab.add_host()
    holders = []
    try:
        # br0: the LAN NIC (a veth in the lab), a guest's tap held by "qemu", a free tap, a veth guest
        make_bridge(host, "br0")
        host.run(["ip", "link", "set", "eth1", "master", "br0"])
        ok(module(ansible, host, {"taps": [{"name": "vnet0"}, {"name": "vnet1"}], "bridge": "br0"}))
        holders.append(Holder(host, "vnet0", guest="web01"))
        guest = host.add_guest(port="vnet2", bridge="br0")
        # virbr0: an isolated network with STP and an address
        host.run(["ip", "link", "add", "virbr0", "type", "bridge", "stp_state", "1", "forward_delay", "200"])
        host.run(["ip", "addr", "add", "198.19.200.1/24", "dev", "virbr0"])
        host.run(["ip", "link", "set", "virbr0", "up"])
        # taps on no bridge: vnet3 held by a guest named the old way, vnet5 free here but held in another host
        ok(module(ansible, host, {"taps": [{"name": "vnet3"}, {"name": "vnet5"}], "bridge": ""}))
        holders.append(Holder(host, "vnet3", guest="legacy"))
        ok(module(ansible, other, {"name": "vnet5"}))
        holders.append(Holder(other, "vnet5", guest="stranger"))
        settled_ports(host, "br0")

        result = info(ansible, host)
        assert result["changed"] is False
        assert [b["name"] for b in result["bridges"]] == ["br0", "virbr0"]
        br0, virbr0 = result["bridges"]

        kernel = link(host, "br0")
        assert (br0["mac"], br0["mtu"], br0["operstate"], br0["ifindex"]) == (kernel["address"], kernel["mtu"], kernel["operstate"].lower(), kernel["ifindex"])
        assert br0["stp"] is False
        assert br0["forward_delay"] == 0.0
        assert br0["bridge_id"].startswith("8000.")
        assert [p["name"] for p in br0["ports"]] == ["eth1", "vnet0", "vnet1", "vnet2"]
        assert [p["kind"] for p in br0["ports"]] == ["veth", "tap", "tap", "veth"]
        for port in br0["ports"]:
            kernel = link(host, port["name"])
            assert port["mac"] == kernel["address"]
            assert port["carrier"] == ("NO-CARRIER" not in kernel["flags"])
            assert port["stp_state"] == kernel["linkinfo"]["info_slave_data"]["state"]

        web = br0["ports"][1]
        assert web["process"]["pid"] == holders[0].pid
        assert "-name guest=web01,debug-threads=on" in web["process"]["cmdline"]
        assert web["guest"] == "web01"
        assert (web["carrier"], web["stp_state"], web["persistent"], web["vnet_hdr"]) == (True, "forwarding", True, True)
        free = br0["ports"][2]
        assert (free["process"], free["guest"], free["carrier"], free["stp_state"]) == (None, None, False, "disabled")
        assert "process" not in br0["ports"][3]
        assert guest.port == "vnet2"

        assert (virbr0["stp"], virbr0["stp_mode"], virbr0["forward_delay"], virbr0["ports"], virbr0["uplinks"]) == (True, "kernel", 2.0, [], [])
        assert [a["cidr"] for a in virbr0["addresses"] if a["family"] == "ipv4"] == ["198.19.200.1/24"]

        loose = {t["name"]: t for t in result["unbridged_taps"]}
        assert set(loose) == {"vnet3", "vnet5"}
        assert loose["vnet3"]["process"]["pid"] == holders[1].pid
        assert loose["vnet3"]["guest"] == "legacy"
        # the other host's vnet5 is another tap: its holder is not ours
        assert loose["vnet5"]["process"] is None
        assert loose["vnet5"]["carrier"] is False

        assert result["forwarding"] == {
            "ip_forward": sysctl(host, "net/ipv4/ip_forward"),
            "ipv6_forwarding": sysctl(host, "net/ipv6/conf/all/forwarding"),
            "bridge_nf_call_iptables": sysctl(host, "net/bridge/bridge-nf-call-iptables"),
            "bridge_nf_call_ip6tables": sysctl(host, "net/bridge/bridge-nf-call-ip6tables"),
            "bridge_nf_call_arptables": sysctl(host, "net/bridge/bridge-nf-call-arptables"),
        }

        report = result["report"]
        assert report.splitlines()[0].split() == ["bridge", "name", "bridge", "id", "STP", "enabled", "interfaces"]
        assert report.splitlines()[1].split() == ["br0", br0["bridge_id"], "no", "eth1"]
        assert "vnet0: tap of guest web01, pid %d (python" % holders[0].pid in report
        assert "vnet5: tap, no process holds it, carrier off" in report
        assert "virbr0: %s, mtu 1500" % virbr0["operstate"] in report
        assert "no uplink: a network inside this host only" in report
        print("\n" + report)

        # read-only, also in check mode
        assert info(ansible, host, check=True)["bridges"] == result["bridges"]
    finally:
        for holder in holders:
            holder.stop()
        lab.remove_host(other)


def test_a_thousand_ports(host, ansible):
    make_bridge(host, "br0")
    ok(module(ansible, host, {"taps": [{"name": "vnet%d" % i} for i in range(1000)], "bridge": "br0"}))
    started = time.monotonic()
    result = info(ansible, host)
    elapsed = time.monotonic() - started
    ports = result["bridges"][0]["ports"]
    assert len(ports) == 1000
    assert ports[0]["name"] == "vnet0"
    assert ports[-1]["name"] == "vnet999"
    assert all(p["kind"] == "tap" and p["process"] is None for p in ports)
    print("\nbridge_info with 1000 ports, whole ansible-playbook run: %.2f s" % elapsed)

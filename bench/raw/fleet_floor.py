"""The physical floor of the fleet benchmark: one host's netlink and file work, without Ansible.

Runs inside a fresh lab host (``nsenter``, with --stock-firewall), with the
Python of the managed hosts:

    python fleet_floor.py --nic eth1 --bridge breth1

It brings the host to the state that site.yml (host_bridge and forwarding)
reaches, with the least work: read the NIC's ifcfg file and the links (one
dump), write ifcfg-<bridge> and ifcfg-<nic> (temp file, fsync, rename), create
the bridge with the NIC's MAC, make the NIC its port, bring both up, write
net.ipv4.ip_forward at runtime and in a sysctl.d drop-in, remove the stock
FORWARD REJECT rule from the runtime rules (one iptables command: there is no
pure-netlink way without an nftables library) and from /etc/sysconfig/iptables.
It prints the time of each kind of work as JSON; the harness adds the process's
wall time (interpreter start and the import of pyroute2 included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

SCRIPTS = "/etc/sysconfig/network-scripts"
SYSCTL_FILE = "/etc/sysctl.d/90-kvmhost-bridging.conf"
RULES = "/etc/sysconfig/iptables"
REJECT = "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"


def atomic_write(path, text):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--nic", default="eth1")
    parser.add_argument("--bridge", default="breth1")
    args = parser.parse_args(argv)
    times = {}

    t0 = time.monotonic()
    from pyroute2 import IPRoute

    times["import_s"] = time.monotonic() - t0

    # Files: read what is there, write the new ifcfg files.
    t = time.monotonic()
    nic_file = os.path.join(SCRIPTS, "ifcfg-" + args.nic)
    with open(nic_file) as handle:
        old = handle.read()
    keep = [line for line in old.splitlines() if line.split("=", 1)[0] in ("HWADDR",)]
    atomic_write(
        os.path.join(SCRIPTS, "ifcfg-" + args.bridge), "DEVICE=%s\nTYPE=Bridge\nBOOTPROTO=none\nONBOOT=yes\nNM_CONTROLLED=no\nDELAY=0\nSTP=no\n" % args.bridge
    )
    atomic_write(nic_file, "DEVICE=%s\nTYPE=Ethernet\n%s\nBRIDGE=%s\nBOOTPROTO=none\nONBOOT=yes\nNM_CONTROLLED=no\n" % (args.nic, "\n".join(keep), args.bridge))
    atomic_write(SYSCTL_FILE, "net.ipv4.ip_forward = 1\n")
    if os.path.exists(RULES):
        with open(RULES) as handle:
            rules = handle.read()
        atomic_write(RULES, "".join(line for line in rules.splitlines(True) if line.strip() != REJECT))
    times["file_s"] = time.monotonic() - t

    # Netlink: one dump, the bridge with the NIC's MAC, the port, both up.
    t = time.monotonic()
    with IPRoute() as ip:
        links = {msg.get_attr("IFLA_IFNAME"): msg for msg in ip.get_links()}
        nic = links[args.nic]
        mac = nic.get_attr("IFLA_ADDRESS")
        if args.bridge not in links:
            ip.link("add", ifname=args.bridge, kind="bridge", br_forward_delay=0, br_stp_state=0, address=mac)
        bridge = ip.link_lookup(ifname=args.bridge)[0]
        ip.link("set", index=nic["index"], master=bridge, state="up")
        ip.link("set", index=bridge, state="up")
    times["netlink_s"] = time.monotonic() - t

    # sysctl at runtime: a write to /proc/sys.
    t = time.monotonic()
    with open("/proc/sys/net/ipv4/ip_forward", "w") as handle:
        handle.write("1\n")
    times["sysctl_s"] = time.monotonic() - t

    # The runtime REJECT rule: one command.
    t = time.monotonic()
    proc = subprocess.run(["iptables", "-D", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"], check=False, capture_output=True)
    times["iptables_s"] = time.monotonic() - t
    times["iptables_rc"] = proc.returncode

    times["netlink_and_file_s"] = times["file_s"] + times["netlink_s"] + times["sysctl_s"]
    times["all_work_s"] = times["netlink_and_file_s"] + times["iptables_s"]
    times["total_in_process_s"] = time.monotonic() - t0
    print(json.dumps(times))


if __name__ == "__main__":
    main()

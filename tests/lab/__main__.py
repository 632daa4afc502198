"""Command line of the namespace lab.

python tests/lab up [--hosts N] [--id ID] [--stock-firewall]
python tests/lab status [--id ID]
python tests/lab inventory [--id ID] [--output FILE]
python tests/lab guest HOST [--port vnetN] [--bridge BR] [--dhcp]
python tests/lab vm HOST NAME [--nic BRIDGE=MAC ...] [--define-only] [--lease MAC]   (a libvirt domain)
python tests/lab vm HOST NAME --tap TAP=MAC [--tap ...] [--lease MAC]                 (a plain QEMU process)
python tests/lab down [--id ID | --all]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kvmblab


def _pairs(values, what):
    pairs = []
    for value in values:
        name, sep, mac = value.partition("=")
        if not (sep and name and mac):
            raise kvmblab.LabError("%s must be NAME=MAC, got %r" % (what, value))
        pairs.append((name, mac))
    return pairs


def _vm(lab, args):
    import kvmb_vm  # only this command needs it

    host = lab.host(args.host)
    if args.tap:
        guest = kvmb_vm.start_qemu(host, args.name, _pairs(args.tap, "--tap"))
        out = {"qemu": args.name, "pid": guest.pid}
    else:
        libvirtd = kvmb_vm.Libvirtd(host).start()
        nics = [kvmb_vm.bridge_nic(bridge, mac) for bridge, mac in _pairs(args.nic, "--nic")]
        guest = libvirtd.define(args.name, nics, start=not args.define_only)
        out = {"domain": args.name, "state": guest.state()}
    out["console"] = guest.console.path
    if args.lease:
        out["lease"] = guest.console.wait_lease(args.lease, timeout=args.timeout)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python tests/lab", description="kvmhost.bridging namespace lab")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--id", type=int, default=int(os.environ.get("KVMB_LAB_ID", "0")), help="lab id 0-99 (default: $KVMB_LAB_ID or 0)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring the lab up", parents=[common])
    up.add_argument("--hosts", type=int, default=2)
    up.add_argument("--stock-firewall", action="store_true", help="give hosts the stock RHEL iptables rules, at runtime and in /etc/sysconfig/iptables")
    up.add_argument("--python", default=sys.executable, help="managed hosts' Python (must import pyroute2)")
    up.add_argument("--networkmanager", action="store_true", help="new hosts run real NetworkManager on keyfile profiles (kvmb_nm)")
    sub.add_parser("status", help="show what exists", parents=[common])
    inv = sub.add_parser("inventory", help="print or write the Ansible inventory", parents=[common])
    inv.add_argument("--output")
    guest = sub.add_parser("guest", help="plug a guest namespace into a host", parents=[common])
    guest.add_argument("host")
    guest.add_argument("--port")
    guest.add_argument("--bridge")
    guest.add_argument("--dhcp", action="store_true")
    vm = sub.add_parser(
        "vm", help="boot a real VM in a host: a libvirt domain (libvirtd started in the host) or, with --tap, a plain QEMU process", parents=[common]
    )
    vm.add_argument("host")
    vm.add_argument("name")
    vm.add_argument("--nic", action="append", default=[], metavar="BRIDGE=MAC", help="a NIC on a bridge (libvirt)")
    vm.add_argument("--tap", action="append", default=[], metavar="TAP=MAC", help="a NIC on an existing tap (plain QEMU)")
    vm.add_argument("--define-only", action="store_true", help="define the libvirt domain, do not start it")
    vm.add_argument("--lease", metavar="MAC", help="wait for the guest's lease on this NIC and print it")
    vm.add_argument("--timeout", type=float, default=120)
    down = sub.add_parser("down", help="remove everything the lab made", parents=[common])
    down.add_argument("--all", action="store_true", help="every lab on this machine (ids 0-99)")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            lab = kvmblab.Lab(args.id, python=args.python)
            if args.networkmanager:
                lab.up(hosts=0)
                while len(lab.hosts()) < args.hosts:
                    lab.add_host(stock_firewall=args.stock_firewall, networkmanager=True)
            hosts = lab.up(hosts=args.hosts, stock_firewall=args.stock_firewall)
            print("lab %d up: %d hosts; inventory: %s" % (lab.id, len(hosts), lab.inventory_path))
        elif args.command == "status":
            print(json.dumps(kvmblab.Lab(args.id).status(), indent=2))
        elif args.command == "inventory":
            lab = kvmblab.Lab(args.id)
            if args.output:
                print(lab.write_inventory(args.output))
            else:
                print(json.dumps(lab.inventory(), indent=2))
        elif args.command == "guest":
            lab = kvmblab.Lab(args.id)
            guest = lab.host(args.host).add_guest(port=args.port, bridge=args.bridge)
            lease = guest.dhcp() if args.dhcp else None
            print(json.dumps({"netns": guest.netns, "port": guest.port, "lease": lease}))
        elif args.command == "vm":
            print(json.dumps(_vm(kvmblab.Lab(args.id), args)))
        elif args.command == "down":
            ids = range(100) if args.all else [args.id]
            for lab_id in ids:
                kvmblab.Lab(lab_id).down()
    except kvmblab.LabError as exc:
        print("lab: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The floor of the bulk benchmark: the tap module's operations, by raw pyroute2 in one process.

Runs inside a lab host (``nsenter``), with the Python of the managed hosts:

    python taps_pyroute2.py create --count 1000 --bridge brbulk
    python taps_pyroute2.py delete --count 1000

``create`` does what the tap module does for a list of new taps: one dump of
the links, then a persistent tap per name (pyroute2's tuntap, an ioctl), then
one RTM_NEWLINK per tap that sets its bridge and brings it up. ``delete``
removes them as one link group. It prints the phases' times as JSON; the
harness measures the process's wall time (interpreter start and the import of
pyroute2 included) from outside.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

DELETE_GROUP = 0x6B76


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["create", "delete"])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--prefix", default="vnet")
    parser.add_argument("--bridge", default="brbulk")
    args = parser.parse_args(argv)
    names = ["%s%d" % (args.prefix, i) for i in range(args.count)]

    t0 = time.monotonic()
    from pyroute2 import IPRoute

    t1 = time.monotonic()
    out = {"import_s": t1 - t0}
    with IPRoute() as ip:
        links = {msg.get_attr("IFLA_IFNAME"): msg["index"] for msg in ip.get_links()}
        t2 = time.monotonic()
        out["dump_s"] = t2 - t1
        if args.action == "create":
            bridge = links[args.bridge]
            for name in names:
                ip.link("add", ifname=name, kind="tuntap", mode="tap")
            t3 = time.monotonic()
            for name in names:
                ip.link("set", index=socket.if_nametoindex(name), master=bridge, state="up")
            t4 = time.monotonic()
            out.update(create_s=t3 - t2, set_s=t4 - t3)
        else:
            indexes = [links[name] for name in names if name in links]
            for index in indexes:
                ip.link("set", index=index, group=DELETE_GROUP)
            if indexes:
                ip.link("del", group=DELETE_GROUP)
            t4 = time.monotonic()
            out.update(deleted=len(indexes), delete_s=t4 - t2)
    out["ops_s"] = t4 - t1
    out["total_in_process_s"] = t4 - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()

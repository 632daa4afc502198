"""Read floors of the link dump that tap and bridge_info start with, measured in one process.

Runs inside a lab host (``nsenter``) with the Python of the managed hosts and
the installed collection on PYTHONPATH:

    python link_dump.py --reps 5

and prints, as JSON, the median wall seconds (and, as ``<name>_cpu``, the
median CPU seconds) of
- ``pyroute2_dump``: IPRoute.get_links() (receive and parse the messages);
- ``pyroute2_records``: the same plus decoding the fields the modules use
  (how tap and bridge_info read before _rtnl: pyroute2 decodes lazily);
- ``collection_dump``: _rtnl.dump_links(), the collection's standard-library
  reader that tap and bridge_info use now (the same fields as full records);
- ``raw_dump``: a minimal RTM_GETLINK dump over a plain AF_NETLINK socket,
  parsed with struct for the same fields (name, index, flags, master, kind and
  the kind's data): what a read path without pyroute2 costs;
- ``gather``: bridge_info's whole work (_bridge_info.gather(): both dumps,
  the /proc scan for tap holders, the description), in process;
- ``import_pyroute2``: the import, for scale.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import time

RTM_GETLINK, NLM_F_REQUEST, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR = 18, 0x1, 0x300, 3, 2
IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_EXT_MASK = 3, 10, 18, 29
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
RTEXT_FILTER_SKIP_STATS = 8


def _attrs(buf, off, end):
    out = {}
    while off + 4 <= end:
        length, kind = struct.unpack_from("HH", buf, off)
        if length < 4:
            break
        out[kind & 0x3FFF] = (off + 4, off + length)
        off += (length + 3) & ~3
    return out


def _cstr(buf, span):
    return buf[span[0] : span[1]].split(b"\0", 1)[0].decode("utf-8", "replace")


def raw_dump():
    """Every link as a dict, from one RTM_GETLINK dump, without pyroute2."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, 0))
        body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0) + struct.pack("HHI", 8, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        sock.send(struct.pack("IHHII", 16 + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        links = []
        while True:
            data = sock.recv(1 << 20)
            off = 0
            while off < len(data):
                length, kind = struct.unpack_from("IH", data, off)
                if kind == NLMSG_DONE:
                    return links
                if kind == NLMSG_ERROR:
                    raise OSError("netlink error %d" % struct.unpack_from("i", data, off + 16)[0])
                _family, _type, index, flags, _change = struct.unpack_from("BxHiII", data, off + 16)
                attrs = _attrs(data, off + 32, off + length)
                rec = {"index": index, "flags": flags, "name": None, "master": None, "kind": None, "data": None}
                if IFLA_IFNAME in attrs:
                    rec["name"] = _cstr(data, attrs[IFLA_IFNAME])
                if IFLA_MASTER in attrs:
                    rec["master"] = struct.unpack_from("I", data, attrs[IFLA_MASTER][0])[0]
                if IFLA_LINKINFO in attrs:
                    info = _attrs(data, *attrs[IFLA_LINKINFO])
                    if IFLA_INFO_KIND in info:
                        rec["kind"] = _cstr(data, info[IFLA_INFO_KIND])
                    if IFLA_INFO_DATA in info:
                        rec["data"] = {k: data[s:e] for k, (s, e) in _attrs(data, *info[IFLA_INFO_DATA]).items()}
                links.append(rec)
                off += (length + 3) & ~3
    finally:
        sock.close()


CPU = {}


def _median_time(fn, reps, name):
    """Median wall seconds of ``fn()`` over ``reps`` calls (the median CPU seconds go to CPU[name])."""
    times, cpus, result = [], [], None
    for _rep in range(reps):
        start, start_cpu = time.monotonic(), time.process_time()
        result = fn()
        times.append(time.monotonic() - start)
        cpus.append(time.process_time() - start_cpu)
    CPU[name + "_cpu"] = statistics.median(cpus)
    return statistics.median(times), result


def _pyroute2_record(msg):
    """The fields the modules read, decoded by pyroute2 (how tap and bridge_info read before _rtnl)."""
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
    slave = info.get_attr("IFLA_INFO_SLAVE_DATA") if info is not None else None
    return {
        "index": msg["index"],
        "name": msg.get_attr("IFLA_IFNAME"),
        "master": msg.get_attr("IFLA_MASTER"),
        "mac": msg.get_attr("IFLA_ADDRESS"),
        "mtu": msg.get_attr("IFLA_MTU"),
        "operstate": msg.get_attr("IFLA_OPERSTATE"),
        "kind": kind,
        "data": dict(data["attrs"]) if hasattr(data, "get_attr") else None,
        "brport": slave.get_attr("IFLA_BRPORT_STATE") if hasattr(slave, "get_attr") else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    out = {}
    start = time.monotonic()
    from pyroute2 import IPRoute

    out["import_pyroute2"] = time.monotonic() - start
    from ansible_collections.kvmhost.bridging.plugins.module_utils._rtnl import dump_links

    with IPRoute() as ip:
        out["pyroute2_dump"], msgs = _median_time(ip.get_links, args.reps, "pyroute2_dump")
        out["pyroute2_records"], _records = _median_time(lambda: [_pyroute2_record(m) for m in ip.get_links()], args.reps, "pyroute2_records")
    out["raw_dump"], links = _median_time(raw_dump, args.reps, "raw_dump")
    out["collection_dump"], records = _median_time(dump_links, args.reps, "collection_dump")
    from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_info import gather

    # bridge_info's whole work in one process (dumps, /proc scan, description): no interpreter start-up in it.
    out["gather"], _info = _median_time(gather, max(args.reps, 9), "gather")
    assert len(records) == len(links)
    out.update(CPU)
    out["links"] = len(links)
    assert len(links) == len(msgs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Markdown tables from the raw results of bench/run.py, for docs/performance.md.

.venv/bin/python bench/report.py [/tmp/kvmb-bench-results.json]
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kvmbench import fmt_s, fmt_x, ratio


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _column in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def stat(st):
    if not st:
        return ["-", "-", "-"]
    return [fmt_s(st["median"]), "%s - %s" % (fmt_s(st["min"]), fmt_s(st["max"])), str(st["n"])]


def machine(res):
    m = res["machine"]
    return table(
        ["", ""],
        [
            ["CPU", "%s x %s" % (m["nproc"], m["cpu"])],
            ["memory", "%s MiB" % m["memory_mib"]],
            ["OS, kernel", "%s, %s" % (m["os"], m["kernel"])],
            ["Python, ansible-core, pyroute2", "%s, %s, %s" % (m["python"], m["ansible_core"], m["pyroute2"])],
            ["OpenSSH", m["openssh"]],
            ["load average at start / end", "%s / %s" % (m["loadavg_at_start"], m.get("loadavg_at_end"))],
            ["whole run", fmt_s(res.get("wall_s"))],
        ],
    )


def targets(res):
    mark = {True: "met", False: "**missed**", None: "n/a"}
    return table(["target", "result", "measured"], [[t["target"], mark[t["met"]], t["detail"]] for t in res["targets"]])


def floor(sec):
    parts = []
    configs = list(sec["configs"])
    labels = list(sec["configs"][configs[0]]["spans"])
    header = ["task"]
    for c in configs:
        header += ["%s median" % c, "min - max", "x ping"]
    rows = []
    for label in labels:
        row = [label]
        for c in configs:
            spans = sec["configs"][c]["spans"]
            st = spans[label]
            row += [fmt_s(st["median"]), "%s - %s" % (fmt_s(st["min"]), fmt_s(st["max"])), fmt_x(ratio(st["median"], spans["ping"]["median"]))]
        rows.append(row)
    parts.append(table(header, rows))
    cpu = sec.get("direct_cpu", {})
    parts.append(
        table(
            ["run directly on the host (no Ansible)", "wall median", "min - max", "n", "CPU median"],
            [[k, *stat(v), fmt_s((cpu.get(k) or {}).get("median"))] for k, v in sec["direct"].items()],
        )
    )
    return "\n".join(parts)


def bulk(sec):
    rows = [
        ["raw pyroute2, process wall (the floor)", *stat(sec["raw_pyroute2_wall"])],
        ["raw pyroute2, import + operations", *stat(sec["raw_pyroute2_in_process"])],
        ["raw pyroute2, operations only", *stat(sec["raw_pyroute2_ops"])],
    ]
    if sec.get("raw_pyroute2_delete_wall"):
        rows.append(["raw pyroute2 delete (one link group), process wall", *stat(sec["raw_pyroute2_delete_wall"])])
    rows.append(["ip -batch", *stat(sec["ip_batch"])])
    for c, d in sec["configs"].items():
        for key in ("ping", "create", "rerun", "delete"):
            rows.append(["%s: %s" % (c, {"ping": "ping", "create": "tap create", "rerun": "tap re-run", "delete": "tap delete"}[key]), *stat(d[key])])
    for c, d in sec["loop"].items():
        rows.append(["%s: command loop, per tap (2 items)" % c, *stat(d["per_tap"])])
        rows.append(["%s: command loop, %d taps extrapolated from %d" % (c, sec["count"], d["items"]), fmt_s(d["extrapolated"]), "", "1"])
    return table(["%d taps on one bridge" % sec["count"], "median", "min - max", "n"], rows)


def inventory(sec):
    sizes = sec["sizes"]
    configs = list(sec["configs"])
    header = ["ports"]
    for c in configs:
        header += ["%s task" % c, "ping"]
    header += ["direct (no Ansible)", "its CPU", "pyroute2 read", "_rtnl read (used)", "ip -j -d link show"]
    rows = []
    for s in map(str, sizes):
        row = [s]
        for c in configs:
            d = sec["configs"][c][s]
            row += [fmt_s(d["info"]["median"]), fmt_s(d["ping"]["median"])]
        reads = sec["reads"][s]
        cpu = (sec.get("direct_cpu", {}).get(s) or {}).get("median")
        used = reads.get("collection_dump", reads["raw_dump"])
        row += [fmt_s(sec["direct"][s]["median"]), fmt_s(cpu), fmt_s(reads["pyroute2_records"]), fmt_s(used), fmt_s(sec["ip_json"][s]["median"])]
        rows.append(row)
    fits = table(
        ["series", "intercept", "per port", "R^2", "growth exponent"],
        [
            [name, fmt_s(f["intercept"]), "%.3f ms" % (f["slope"] * 1000), "%.4f" % f["r2"], "-" if f.get("exponent") is None else "%.2f" % f["exponent"]]
            for name, f in sec["fits"].items()
        ],
    )
    return table(header, rows) + "\n" + fits


def fleet(sec):
    phys = sec["physical"]
    rows = [[k, *stat(v)] for k, v in phys.items()]
    out = table(["physical floor, per host", "median", "min - max", "n"], rows) + "\n"
    rows = []
    per_host = phys["netlink_and_file_s"]["median"]
    for e in sec["runs"]:
        first, rerun = e.get("first") or {}, e.get("rerun") or {}
        rows.append(
            [
                e["size"],
                e["config"],
                e["variant"] + (" (failed)" if e.get("error") else ""),
                fmt_s(first.get("median")),
                fmt_s(rerun.get("median")),
                fmt_x(ratio(rerun.get("median"), first.get("median"))),
                fmt_s(e.get("first_cpu_median")),
                fmt_s(e.get("rerun_cpu_median")),
                max(e.get("first_changed") or ["-"]),
                max(e.get("rerun_changed") or ["-"]),
                fmt_s(e.get("ping_wall")),
                fmt_s(per_host * e["size"]),
            ]
        )
    out += table(
        [
            "hosts",
            "config",
            "playbook",
            "first run",
            "re-run",
            "re-run / first",
            "controller CPU 1st",
            "controller CPU 2nd",
            "changed 1st",
            "changed 2nd",
            "one ping task",
            "netlink + file work x hosts",
        ],
        rows,
    )
    for e in sec["runs"]:
        out += task_profile(e)
    return out


def task_profile(entry):
    """Each task's cost and round trips of a fleet run whose profile was recorded (the last repetition)."""
    phases = {r["phase"]: r for r in entry.get("runs", []) if r.get("profile")}
    first, rerun = phases.get("first"), phases.get("rerun") or {}
    if not first or entry.get("error"):
        return ""
    hosts = entry["size"]

    def per_host(value):
        return "-" if value is None else "%.1f" % (value / hosts)

    again = {t["name"]: t for t in rerun.get("profile", [])}
    rows = []
    for t in first["profile"]:
        r = again.get(t["name"], {})
        if t["span"] < 0.1 and not t["round_trips"] and not t.get("ssh_ops") and r.get("span", 0) < 0.1:
            continue
        rows.append(
            [
                t["name"].split(" : ", 1)[-1],
                (t["action"] or "").rsplit(".", 1)[-1],
                fmt_s(t["span"]),
                per_host(t["round_trips"]),
                per_host(t.get("ssh_ops")),
                fmt_s(r.get("span")),
                per_host(r.get("round_trips")),
                per_host(r.get("ssh_ops")),
            ]
        )
    total = [
        "all tasks",
        "",
        fmt_s(first["wall"]),
        "%.1f" % first["round_trips_per_host"],
        "-" if first.get("ssh_ops_per_host") is None else "%.1f" % first["ssh_ops_per_host"],
        fmt_s(rerun.get("wall")),
        "-" if not rerun else "%.1f" % rerun["round_trips_per_host"],
        "-" if rerun.get("ssh_ops_per_host") is None else "%.1f" % rerun["ssh_ops_per_host"],
    ]
    out = "\n%s on %d hosts (%s), per task:\n\n" % (entry["variant"], hosts, entry["config"])
    out += table(["task", "action", "first run", "round trips / host", "SSH ops / host", "re-run", "round trips / host", "SSH ops / host"], [*rows, total])
    for nm_log in entry.get("nm_log", []):
        out += "\nNetworkManager's log, median over %d hosts: %s\n" % (
            nm_log["hosts"],
            ", ".join("%s %s" % (k, fmt_s((v or {}).get("median"))) for k, v in nm_log.items() if k != "hosts"),
        )
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0] if argv else "/tmp/kvmb-bench-results.json") as handle:
        res = json.load(handle)
    print("### Machine\n")
    print(machine(res))
    print("### Targets\n")
    print(targets(res))
    for name, fn in (("floor", floor), ("bulk", bulk), ("inventory", inventory), ("fleet", fleet)):
        sec = res["sections"].get(name)
        if sec and "error" not in sec:
            print("### %s\n" % name)
            print(fn(sec))
        elif sec:
            print("### %s\n\nfailed: %s\n" % (name, sec["error"][:500]))
    for note in res.get("notes", []):
        print("- note: %s" % note)


if __name__ == "__main__":
    main()

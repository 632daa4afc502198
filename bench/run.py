"""Benchmarks of kvmhost.bridging: medians, min/max and the issue's ratios, side by side in one run.

    .venv/bin/python bench/run.py [--quick] [--only floor,bulk,inventory,fleet] [--configs pipelining,mitogen]

Sections (each on its own namespace lab, torn down at its end, also on failure):

floor      each module's no-op task against ansible.builtin.ping, in the same
           playbook, with pipelining on and off and with Mitogen; the same
           modules run directly on the host (no Ansible) to split the cost.
bulk       1000 taps on one bridge: the tap module in one task, against raw
           pyroute2 in one process (the floor), ``ip -batch``, and a loop of
           ``ansible.builtin.command: ip tuntap add`` tasks; the idempotent re-run.
inventory  bridge_info with 10 to 1000 ports; a line fitted through the medians.
fleet      playbooks/site.yml (host_bridge and forwarding) on 20 and 50 hosts
           against bench/classic/classic.yml (the classic guide, step by step),
           first run and idempotent re-run; the physical floor per host. On the
           smallest fleet also the NetworkManager column: the guarded host_bridge
           play on hosts that run NetworkManager, against the classic playbook on
           network-scripts hosts, with each task's cost and round trips and
           NetworkManager's own timings from its log.

Nothing here fails on a time: a missed target is reported, not raised. The
exit status is non-zero only when the benchmark itself could not run (a task
failed, a lab did not come up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kvmbench
from kvmbench import HERE, PYTHON, ROOT, fmt_s, fmt_x, ratio, summary

SECTIONS = ["floor", "bulk", "inventory", "fleet"]
CONFIGS = ["pipelining", "no-pipelining", "mitogen"]
LAB_IDS = {"floor": 30, "bulk": 31, "inventory": 32, "fleet": 33, "physical": 34}
MODULES_DIR = os.path.join(ROOT, "plugins", "modules")
MODULE_PATH = os.path.join(kvmbench.COLLECTIONS, "ansible_collections", "kvmhost", "bridging", "plugins", "modules")
CLASSIC = os.path.join(HERE, "classic", "classic.yml")
BRIDGE_FORWARDING = os.path.join(HERE, "fleet", "bridge_forwarding.yml")
HOST_BRIDGE = os.path.join(ROOT, "playbooks", "host_bridge.yml")
NM_VARIANT = "host_bridge (NetworkManager)"
INITSCRIPTS_VARIANT = "host_bridge (initscripts)"
SITE = os.path.join(ROOT, "playbooks", "site.yml")
NIC, BRIDGE = "eth1", "breth1"
# The guard's timeout covers the linear strategy's walk over every host from the countdown's start to the
# confirmation (three tasks); on this shared 2-CPU machine under load that took more than the default 60 s for
# 20 hosts. A confirmed change does not wait for it, so it costs nothing.
SITE_VARS = {"host_bridge_nic": NIC, "host_bridge_name": BRIDGE, "host_bridge_rollback_timeout": 300}
CLASSIC_VARS = {"classic_nic": NIC, "classic_bridge": BRIDGE}

# A no-op task per module: the warm-up round brings the host to the state the
# args describe, so every timed run finds nothing to do (checked: changed=false).
NOOP = {
    "ifcfg": {"device": "brbench", "type": "bridge", "bootproto": "none", "onboot": True},
    "tap": {"name": "vnetb0"},
    "bridge_info": {},
    "bridge": {"name": "brbench"},
    "ip_forward": {"ipv4": True},
    "reject_rule": {},
    "guard": {"action": "status", "id": "bench", "state_dir": "/etc/kvmb-bench-guard"},
    "vm_interface": {"domain": "test", "bridge": "brbench", "state": "absent", "uri": "test:///default", "live": False},
}


def log(msg=""):
    print(msg, flush=True)


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.quick = args.quick
        self.workdir = workdir
        self.ansible = kvmbench.Ansible(workdir)
        self.results = {"machine": kvmbench.machine(), "quick": args.quick, "sections": {}, "targets": [], "notes": []}
        self.configs = [c for c in args.configs.split(",") if c]
        if "mitogen" in self.configs:
            path, why = kvmbench.ensure_mitogen(log)
            if path is None:
                self.configs.remove("mitogen")
                self.note("Mitogen not measured: %s" % why)

    # -- reporting -----------------------------------------------------------
    def note(self, text):
        log("  note: " + text)
        self.results["notes"].append(text)

    def target(self, section, what, measured, limit, met, detail):
        entry = {"section": section, "target": what, "measured": measured, "limit": limit, "met": met, "detail": detail}
        self.results["targets"].append(entry)
        log("  TARGET %-58s %s  (%s)" % (what, "met" if met else ("MISSED" if met is False else "n/a"), detail))

    @staticmethod
    def table(title, header, rows):
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        log("\n  " + title)
        log("  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
        for row in rows:
            log("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)))

    @staticmethod
    def srow(label, stats, *extra):
        if stats is None:
            return [label, "-", "-", "-", "0", *extra]
        return [label, fmt_s(stats["median"]), fmt_s(stats["min"]), fmt_s(stats["max"]), str(stats["n"]), *extra]

    def check_run(self, run, what):
        if run.rc != 0 or run.failures():
            raise RuntimeError("%s failed (rc %s): %s\n%s" % (what, run.rc, run.failures()[:5], run.output[-4000:]))

    # -- helpers ---------------------------------------------------------------
    def modules(self):
        present = sorted(f[:-3] for f in os.listdir(MODULES_DIR) if f.endswith(".py") and not f.startswith("_"))
        missing = [m for m in present if m not in NOOP]
        if missing:
            self.note("no no-op args known for %s: not in the floor" % ", ".join(missing))
        return [m for m in present if m in NOOP]

    def direct_module(self, host, module, args, reps):
        """Run a module file directly on the host (no Ansible, no AnsiballZ): the module's own cost."""
        path = os.path.join(self.workdir, "args-%s.json" % module)
        with open(path, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        argv = ["env", "PYTHONPATH=" + kvmbench.COLLECTIONS, PYTHON, os.path.join(MODULE_PATH, module + ".py"), path]
        walls, cpus = [], []
        for _rep in range(reps):
            with kvmbench.ChildClock() as clock:
                proc = host.run(argv, check=False, timeout=300)
            walls.append(clock.wall)
            cpus.append(clock.cpu)
            if proc.returncode != 0 or '"failed": true' in proc.stdout:
                raise RuntimeError("direct run of %s failed: %s%s" % (module, proc.stdout[-2000:], proc.stderr[-2000:]))
        return walls, cpus

    def direct_python(self, host, code, reps):
        walls, cpus = [], []
        for _rep in range(reps):
            with kvmbench.ChildClock() as clock:
                host.run([PYTHON, "-c", code])
            walls.append(clock.wall)
            cpus.append(clock.cpu)
        return walls, cpus

    # == floor ==================================================================
    def floor(self):
        reps = 3 if self.quick else 9
        modules = self.modules()
        out = {"reps": reps, "configs": {}, "direct": {}}
        with kvmbench.lab_up(LAB_IDS["floor"], 1, stock_firewall=True, log=log) as lab:
            host = lab.hosts()[0]
            inventory = lab.inventory_path
            labels = ["ping", *modules]
            tasks = [{"name": "warmup ping", "ansible.builtin.ping": {}}]
            tasks += [{"name": "warmup %s" % m, "kvmhost.bridging.%s" % m: NOOP[m]} for m in modules]
            for r in range(reps):
                order = labels[r % len(labels) :] + labels[: r % len(labels)]  # rotate: no module always runs first
                for label in order:
                    module = "ansible.builtin.ping" if label == "ping" else "kvmhost.bridging." + label
                    tasks.append({"name": "%s #%d" % (label, r), module: {} if label == "ping" else NOOP[label]})
            play = json.dumps([{"name": "floor", "hosts": host.name, "gather_facts": False, "tasks": tasks}], indent=1)
            for config in self.configs:
                log("  floor: %d rounds of %d tasks, %s" % (reps, len(labels), config))
                run = self.ansible.playbook(play, inventory, config=config)
                self.check_run(run, "floor playbook (%s)" % config)
                changed = [t.name for t in run.tasks if not t.name.startswith("warmup") and t.changed()]
                if changed:
                    self.note("floor (%s): a no-op run reported changed: %s" % (config, ", ".join(changed[:10])))
                per = {label: summary(run.spans(label)) for label in labels}
                out["configs"][config] = {"spans": per, "wall": run.wall, "changed_in_noop": changed}
                ping = per["ping"]["median"]
                rows = [self.srow(label, per[label], fmt_x(ratio(per[label]["median"], ping))) for label in labels]
                self.table(
                    "floor, %s: seconds per task (start to next start), ratio of medians to ping" % config,
                    ["task", "median", "min", "max", "n", "x ping"],
                    rows,
                )
            # The same work without Ansible: interpreter, imports, module, on the host.
            log("  floor: direct runs on the host (no Ansible)")
            direct = {
                "python -c pass": self.direct_python(host, "pass", reps),
                "import ansible basic": self.direct_python(host, "import ansible.module_utils.basic", reps),
                "import basic + pyroute2": self.direct_python(host, "import ansible.module_utils.basic, pyroute2", reps),
            }
            for m in modules:
                direct["module " + m] = self.direct_module(host, m, NOOP[m], reps)
            out["direct"] = {k: summary(v[0]) for k, v in direct.items()}
            out["direct_cpu"] = {k: summary(v[1]) for k, v in direct.items()}
            self.table(
                "floor: the same no-ops run directly on the host (no Ansible, no AnsiballZ): process wall, and its CPU time",
                ["what", "median", "min", "max", "n", "CPU median"],
                [self.srow(k, v, fmt_s(out["direct_cpu"][k]["median"])) for k, v in out["direct"].items()],
            )
        for config, data in out["configs"].items():
            ping = data["spans"]["ping"]["median"]
            for m in modules:
                x = ratio(data["spans"][m]["median"], ping)
                xmin = ratio(data["spans"][m]["min"], data["spans"]["ping"]["min"])
                self.target(
                    "floor",
                    "%s no-op <= 1.3x ping (%s)" % (m, config),
                    x,
                    1.3,
                    x <= 1.3,
                    "%s vs ping %s: %s (ratio of minima %s)" % (fmt_s(data["spans"][m]["median"]), fmt_s(ping), fmt_x(x), fmt_x(xmin)),
                )
        self.results["sections"]["floor"] = out

    # == bulk ===================================================================
    def bulk(self):
        count = 100 if self.quick else 1000
        reps = 2 if self.quick else 4
        loop_items = {"pipelining": 10, "no-pipelining": 10, "mitogen": 10} if self.quick else {"pipelining": 100, "no-pipelining": 25, "mitogen": 100}
        names = ["vnet%d" % i for i in range(count)]
        raw = os.path.join(HERE, "raw", "taps_pyroute2.py")
        out = {"count": count, "reps": reps, "configs": {}, "loop": {}}
        with kvmbench.lab_up(LAB_IDS["bulk"], 1, stock_firewall=False, log=log) as lab:
            host = lab.hosts()[0]
            host.run(["ip", "link", "add", "brbulk", "type", "bridge"])
            host.run(["ip", "link", "set", "brbulk", "up"])

            raw_deletes = []

            def clean(record=False):
                wall, _res = kvmbench.host_python_run(host, [raw, "delete", "--count", str(count)])
                if record:
                    raw_deletes.append(wall)

            # The floor: raw pyroute2 in one process, and ip -batch for reference.
            log("  bulk: raw pyroute2, %d taps, %d times" % (count, reps))
            raw_walls, raw_inproc, raw_ops = [], [], []
            for _rep in range(reps):
                wall, res = kvmbench.host_python_run(host, [raw, "create", "--count", str(count), "--bridge", "brbulk"])
                raw_walls.append(wall)
                raw_inproc.append(res["total_in_process_s"])
                raw_ops.append(res["ops_s"])
                clean(record=True)
            batch = "".join("tuntap add dev %s mode tap\nlink set %s master brbulk up\n" % (n, n) for n in names)
            batch_walls = []
            for _rep in range(reps):
                batch_walls.append(kvmbench.timed_host_run(host, ["ip", "-batch", "-"], input=batch))
                clean()
            out["raw_pyroute2_wall"] = summary(raw_walls)
            out["raw_pyroute2_in_process"] = summary(raw_inproc)
            out["raw_pyroute2_ops"] = summary(raw_ops)
            out["ip_batch"] = summary(batch_walls)
            out["raw_pyroute2_delete_wall"] = summary(raw_deletes)

            # The module: create, idempotent re-run, delete; ping in the same playbook.
            taps = [{"name": n} for n in names]
            tasks = [{"name": "warmup ping", "ansible.builtin.ping": {}}]
            for r in range(reps):
                tasks += [
                    {"name": "ping #%d" % r, "ansible.builtin.ping": {}},
                    {"name": "create #%d" % r, "kvmhost.bridging.tap": {"taps": "{{ bulk_taps }}", "bridge": "brbulk"}},
                    {"name": "rerun #%d" % r, "kvmhost.bridging.tap": {"taps": "{{ bulk_taps }}", "bridge": "brbulk"}},
                    {"name": "ping #%d.2" % r, "ansible.builtin.ping": {}},
                    {"name": "delete #%d" % r, "kvmhost.bridging.tap": {"taps": "{{ bulk_taps }}", "state": "absent"}},
                ]
            play = json.dumps([{"name": "bulk", "hosts": host.name, "gather_facts": False, "tasks": tasks}], indent=1)
            for config in self.configs:
                log("  bulk: tap module, %d taps, %d rounds, %s" % (count, reps, config))
                run = self.ansible.playbook(play, lab.inventory_path, config=config, extra_vars={"bulk_taps": taps})
                self.check_run(run, "bulk playbook (%s)" % config)
                wrong = [t.name for t in run.by_label("create") + run.by_label("delete") if not t.changed()]
                wrong += [t.name for t in run.by_label("rerun") if t.changed()]
                if wrong:
                    self.note("bulk (%s): unexpected changed flags: %s" % (config, ", ".join(wrong)))
                pings = run.spans("ping") + [t.span for t in run.tasks if t.name.startswith("ping #") and t.name.endswith(".2")]
                out["configs"][config] = {
                    "ping": summary(pings),
                    "create": summary(run.spans("create")),
                    "rerun": summary(run.spans("rerun")),
                    "delete": summary(run.spans("delete")),
                    "wrong_changed": wrong,
                }

            # What users write today: loops of ansible.builtin.command.
            for config in self.configs:
                k = loop_items[config]
                items = names[:k]
                tasks = [
                    {"name": "warmup ping", "ansible.builtin.ping": {}},
                    {"name": "tuntap add", "ansible.builtin.command": "ip tuntap add dev {{ item }} mode tap", "loop": items},
                    {"name": "link set master", "ansible.builtin.command": "ip link set {{ item }} master brbulk up", "loop": items},
                ]
                play = json.dumps([{"name": "loop", "hosts": host.name, "gather_facts": False, "tasks": tasks}], indent=1)
                log("  bulk: loop of command tasks, %d items x 2, %s" % (k, config))
                run = self.ansible.playbook(play, lab.inventory_path, config=config)
                self.check_run(run, "loop playbook (%s)" % config)
                clean()
                add, setm = run.by_label("tuntap add")[0], run.by_label("link set master")[0]
                per_tap = [a + b for a, b in zip(add.item_durations(), setm.item_durations())]
                span = add.span + setm.span
                out["loop"][config] = {"items": k, "span": span, "per_tap": summary(per_tap), "extrapolated": span * count / k}

        ping_floor = {c: out["configs"][c]["ping"]["median"] for c in out["configs"]}
        floor = out["raw_pyroute2_wall"]["median"]
        rows = [
            self.srow("raw pyroute2, process wall", out["raw_pyroute2_wall"]),
            self.srow("raw pyroute2, in process (import+ops)", out["raw_pyroute2_in_process"]),
            self.srow("raw pyroute2, netlink+ioctl only", out["raw_pyroute2_ops"]),
            self.srow("raw pyroute2 delete (link group), process wall", out["raw_pyroute2_delete_wall"]),
            self.srow("ip -batch", out["ip_batch"]),
        ]
        for c, d in out["configs"].items():
            rows += [
                self.srow("%s: ping" % c, d["ping"]),
                self.srow("%s: tap create" % c, d["create"]),
                self.srow("%s: tap re-run" % c, d["rerun"]),
                self.srow("%s: tap delete" % c, d["delete"]),
            ]
        for c, d in out["loop"].items():
            rows.append(self.srow("%s: loop, per tap (2 tasks' items)" % c, d["per_tap"]))
            rows.append(["%s: loop, %d taps extrapolated from %d" % (c, count, d["items"]), fmt_s(d["extrapolated"]), "", "", "1"])
        self.table("bulk: %d taps on one bridge" % count, ["what", "median", "min", "max", "n"], rows)
        floor_min = out["raw_pyroute2_wall"]["min"]
        for c, d in out["configs"].items():
            create, rerun, ping = d["create"]["median"], d["rerun"]["median"], ping_floor[c]
            over = (create - floor) / ping
            over_min = (d["create"]["min"] - floor_min) / d["ping"]["min"]
            self.target(
                "bulk",
                "create <= floor + 1.5x ping (%s)" % c,
                over,
                1.5,
                over <= 1.5,
                "create %s, floor %s, ping %s: floor + %.2fx ping (minima: floor + %.2fx ping)" % (fmt_s(create), fmt_s(floor), fmt_s(ping), over, over_min),
            )
            x = ratio(rerun, ping)
            self.target(
                "bulk",
                "re-run <= 1.5x ping (%s)" % c,
                x,
                1.5,
                x <= 1.5,
                "re-run %s, ping %s: %s (ratio of minima %s)" % (fmt_s(rerun), fmt_s(ping), fmt_x(x), fmt_x(ratio(d["rerun"]["min"], d["ping"]["min"]))),
            )
            if c in out["loop"]:
                speedup = ratio(out["loop"][c]["extrapolated"], create)
                self.target(
                    "bulk",
                    "module >= 50x faster than the command loop (%s)" % c,
                    speedup,
                    50,
                    speedup >= 50,
                    "loop %s (extrapolated) / create %s = %.0fx" % (fmt_s(out["loop"][c]["extrapolated"]), fmt_s(create), speedup),
                )
        self.results["sections"]["bulk"] = out

    # == inventory ==============================================================
    def inventory(self):
        sizes = [10, 100] if self.quick else [10, 100, 300, 1000]
        reps = 3 if self.quick else 7
        out = {"sizes": sizes, "reps": reps, "configs": {}, "direct": {}, "direct_cpu": {}, "ip_json": {}, "reads": {}}
        configs = [c for c in self.configs if c != "no-pipelining"]
        with kvmbench.lab_up(LAB_IDS["inventory"], 1, stock_firewall=False, log=log) as lab:
            host = lab.hosts()[0]
            host.run(["ip", "link", "add", "brinv", "type", "bridge"])
            host.run(["ip", "link", "set", "brinv", "up"])
            have = 0
            tasks = [{"name": "warmup ping", "ansible.builtin.ping": {}}, {"name": "warmup info", "kvmhost.bridging.bridge_info": {}}]
            for r in range(reps):
                tasks += [{"name": "ping #%d" % r, "ansible.builtin.ping": {}}, {"name": "info #%d" % r, "kvmhost.bridging.bridge_info": {}}]
            play = json.dumps([{"name": "inventory", "hosts": host.name, "gather_facts": False, "tasks": tasks}], indent=1)
            for size in sizes:
                batch = "".join("tuntap add dev vnet%d mode tap\nlink set vnet%d master brinv up\n" % (i, i) for i in range(have, size))
                host.run(["ip", "-batch", "-"], input=batch)
                have = size
                for config in configs:
                    log("  inventory: bridge_info, %d ports, %s" % (size, config))
                    run = self.ansible.playbook(play, lab.inventory_path, config=config)
                    self.check_run(run, "inventory playbook (%s)" % config)
                    out["configs"].setdefault(config, {})[size] = {"info": summary(run.spans("info")), "ping": summary(run.spans("ping"))}
                walls, cpus = self.direct_module(host, "bridge_info", {}, 2 * reps)
                out["direct"][size] = summary(walls)
                out["direct_cpu"][size] = summary(cpus)
                ip_times = [kvmbench.timed_host_run(host, ["ip", "-j", "-d", "link", "show"]) for _rep in range(reps)]
                out["ip_json"][size] = summary(ip_times)
                _wall, out["reads"][size] = kvmbench.host_python_run(
                    host, ["env", "PYTHONPATH=" + kvmbench.COLLECTIONS, PYTHON, os.path.join(HERE, "raw", "link_dump.py"), "--reps", str(reps)], python=False
                )
        rows = []
        for size in sizes:
            row = ["%d ports" % size]
            for c in configs:
                d = out["configs"][c][size]
                row += [fmt_s(d["info"]["median"]), "%s-%s" % (fmt_s(d["info"]["min"]), fmt_s(d["info"]["max"])), fmt_s(d["ping"]["median"])]
            row += [fmt_s(out["direct"][size]["median"]), fmt_s(out["direct_cpu"][size]["median"]), fmt_s(out["ip_json"][size]["median"])]
            rows.append(row)
        header = ["size"]
        for c in configs:
            header += ["%s info" % c, "min-max", "ping"]
        header += ["direct (no Ansible)", "its CPU", "ip -j -d link"]
        self.table("inventory: bridge_info by bridge size (medians)", header, rows)
        self.table(
            "inventory: reading the links in one process (medians)",
            ["size", "pyroute2 get_links", "+ decoding the fields", "raw AF_NETLINK + struct", "_rtnl.dump_links (used)", "import pyroute2"],
            [
                [
                    "%d ports" % s,
                    fmt_s(out["reads"][s]["pyroute2_dump"]),
                    fmt_s(out["reads"][s]["pyroute2_records"]),
                    fmt_s(out["reads"][s]["raw_dump"]),
                    fmt_s(out["reads"][s].get("collection_dump")),
                    fmt_s(out["reads"][s]["import_pyroute2"]),
                ]
                for s in sizes
            ],
        )
        fits = {}
        series_list = [(c + " task", {s: out["configs"][c][s]["info"]["median"] for s in sizes}) for c in configs]
        series_list.append(("direct", {s: out["direct"][s]["median"] for s in sizes}))
        series_list.append(("direct CPU", {s: out["direct_cpu"][s]["median"] for s in sizes}))
        series_list.append(("links read in process", {s: out["reads"][s]["collection_dump"] for s in sizes}))
        series_list.append(("gather in process", {s: out["reads"][s]["gather"] for s in sizes}))
        series_list.append(("gather CPU", {s: out["reads"][s]["gather_cpu"] for s in sizes}))
        for name, series in series_list:
            fit = kvmbench.linear_fit(sizes, [series[s] for s in sizes])
            fit["segment_slopes_ms_per_port"] = [(series[b] - series[a]) / (b - a) * 1000 for a, b in zip(sizes, sizes[1:])]
            fit["exponent"] = kvmbench.growth_exponent(sizes, [series[s] for s in sizes])
            fits[name] = fit
            log(
                "  fit %-22s t = %s + %.3f ms/port, R^2 = %.4f, growth exponent %s; segment slopes (ms/port): %s"
                % (
                    name,
                    fmt_s(fit["intercept"]),
                    fit["slope"] * 1000,
                    fit["r2"],
                    "-" if fit["exponent"] is None else "%.2f" % fit["exponent"],
                    ", ".join("%.3f" % s for s in fit["segment_slopes_ms_per_port"]),
                )
            )
        out["fits"] = fits
        # bridge_info's own work, in process and in CPU time: the interpreter's start-up (0.1 s, constant) and other
        # load on the machine disturb it least.
        direct = fits["gather CPU"]
        k = direct["exponent"]
        linear = direct["r2"] >= 0.95 and (k is None or k <= 1.2)
        self.target(
            "inventory",
            "bridge_info cost linear in ports (CPU of its work in process)",
            k,
            1.2,
            linear,
            "%.3f ms/port, R^2 %.4f, exponent of the cost above the smallest size %s (1 = linear, 2 = quadratic)"
            % (direct["slope"] * 1000, direct["r2"], "-" if k is None else "%.2f" % k),
        )
        self.results["sections"]["inventory"] = out

    # == fleet ==================================================================
    def fleet(self):
        sizes = [int(x) for x in self.args.fleet_sizes.split(",")] if self.args.fleet_sizes else ([3] if self.quick else [20, 50])
        out = {"sizes": sizes, "runs": [], "physical": None, "failed": []}
        have_roles = all(os.path.exists(os.path.join(ROOT, "playbooks", p)) for p in ("host_bridge.yml", "forwarding.yml"))
        if not have_roles:
            self.note("playbooks/host_bridge.yml or forwarding.yml has not landed: the fleet section measures only the classic playbook")
        configs = [c for c in self.configs if c != "no-pipelining" or self.args.fleet_no_pipelining]
        nm = have_roles and not self.args.no_fleet_nm and os.path.exists(HOST_BRIDGE)
        plan = []  # (size, config, variant, playbook, extra vars, re-run?, NetworkManager hosts?)
        for size in sizes:
            for config in configs:
                if config != configs[0] and size != sizes[0]:
                    continue  # other configurations on the smallest fleet only: the budget is ~20 minutes
                plan.append((size, config, "classic", CLASSIC, CLASSIC_VARS, size == sizes[0] or self.args.fleet_all_reruns, False))
                if have_roles:
                    # The role with its default guard, under every configuration (Mitogen too: the guard's
                    # watcher starts itself on the host, with no async).
                    plan.append((size, config, "bridge+forwarding", BRIDGE_FORWARDING, SITE_VARS, True, False))
                if nm and size == sizes[0] and config == configs[0]:
                    # The NetworkManager column (issue 11): the guarded host_bridge play on NetworkManager hosts. The
                    # classic playbook is not run there: it writes NM_CONTROLLED=no ifcfg files (which no
                    # NetworkManager of EL9/EL10 reads as a bridge) and changes links behind NetworkManager's back,
                    # so the baseline is the classic playbook on network-scripts hosts, in the same run.
                    # The same play on network-scripts hosts shows what the backend itself costs.
                    plan.append((size, config, NM_VARIANT, HOST_BRIDGE, SITE_VARS, True, True))
                    plan.append((size, config, INITSCRIPTS_VARIANT, HOST_BRIDGE, SITE_VARS, True, False))
                if self.args.fleet_site and os.path.exists(SITE) and size == sizes[0] and config == configs[0]:
                    plan.append((size, config, "site.yml", SITE, SITE_VARS, True, False))  # the whole site.yml once, for scale
        pinged = set()
        reps = self.args.fleet_reps
        for size, config, variant, playbook, extra, rerun, on_nm in plan:
            entry = {"size": size, "config": config, "variant": variant, "networkmanager": on_nm, "first_walls": [], "rerun_walls": [], "runs": []}
            try:
                for _rep in range(reps):
                    with kvmbench.lab_up(LAB_IDS["fleet"], size, stock_firewall=True, log=log, networkmanager=on_nm) as lab:
                        if (size, config, on_nm) not in pinged:
                            pinged.add((size, config, on_nm))
                            ping = self.ansible.playbook(
                                json.dumps([{"name": "ping", "hosts": "all", "gather_facts": False, "tasks": [{"name": "ping", "ansible.builtin.ping": {}}]}]),
                                lab.inventory_path,
                                config=config,
                            )
                            self.check_run(ping, "fleet ping")
                            entry["ping_wall"] = ping.wall
                        for phase in ("first", "rerun") if rerun else ("first",):
                            log("  fleet: %s on %d hosts, %s, %s run" % (variant, size, config, phase))
                            load = kvmbench.loadavg()
                            run = self.ansible.playbook(playbook, lab.inventory_path, config=config, extra_vars=extra, count_ssh=True)
                            entry["runs"].append(
                                {
                                    "phase": phase,
                                    "wall": run.wall,
                                    "cpu": run.controller_cpu,
                                    "ssh_ops": run.ssh_ops,
                                    "ssh_ops_per_host": run.ssh_ops_per_host(),
                                    "changed": run.changed_total(),
                                    "tasks": len(run.tasks),
                                    "load_at_start": load,
                                    "load_at_end": kvmbench.loadavg(),
                                    "round_trips_per_host": run.round_trips_per_host(),
                                    "slowest_tasks": sorted(((round(t.span, 3), t.name) for t in run.tasks), reverse=True)[:8],
                                    "profile": run.profile(),
                                }
                            )
                            ssh_ops = run.ssh_ops_per_host()
                            log(
                                "    %s, changed %d, %.1f round trips and %s SSH operations per host %s, load %.1f to %.1f"
                                % (
                                    fmt_s(run.wall),
                                    run.changed_total(),
                                    run.round_trips_per_host(),
                                    "-" if ssh_ops is None else "%.1f" % ssh_ops,
                                    run.ssh_ops or "",
                                    load[0],
                                    kvmbench.loadavg()[0],
                                )
                            )
                            self.check_run(run, "%s %s run (%s, %d hosts)" % (variant, phase, config, size))
                            entry[phase + "_walls"].append(run.wall)
                            entry.setdefault(phase + "_cpu", []).append(run.controller_cpu)
                            entry.setdefault(phase + "_changed", []).append(run.changed_total())
                        if on_nm:
                            entry.setdefault("nm_log", []).append(self.nm_timings(lab))
                            if "direct" not in entry:
                                try:  # a breakdown only: its failure does not void the fleet figures
                                    entry["direct"] = self.nm_direct(lab.hosts()[0])
                                except Exception as exc:
                                    self.note("fleet: the direct runs on a NetworkManager host failed: %s" % str(exc)[:300])
            except Exception as exc:  # one failed variant does not end the section
                entry["error"] = str(exc)[:3000]
                out["failed"].append("%s, %d hosts, %s: %s" % (variant, size, config, str(exc)[:300]))
                self.note("fleet: %s on %d hosts (%s) failed: %s" % (variant, size, config, str(exc)[:300]))
            entry["first"] = summary(entry["first_walls"])
            entry["rerun"] = summary(entry["rerun_walls"])
            entry["first_cpu_median"] = (summary(entry.get("first_cpu", [])) or {}).get("median")
            entry["rerun_cpu_median"] = (summary(entry.get("rerun_cpu", [])) or {}).get("median")
            out["runs"].append(entry)
            # What is measured so far, in case a long run is cut short.
            with open(self.args.json + ".partial", "w") as handle:
                json.dump({"machine": self.results["machine"], "fleet": out}, handle, indent=1, default=str)
        # The physical floor: the same end state by netlink and file writes, per host.
        hosts = 1 if self.quick else 3
        with kvmbench.lab_up(LAB_IDS["physical"], hosts, stock_firewall=True, log=log) as lab:
            per = []
            for host in lab.hosts():
                wall, res = kvmbench.host_python_run(host, [os.path.join(HERE, "raw", "fleet_floor.py"), "--nic", NIC, "--bridge", BRIDGE])
                res["process_wall_s"] = wall
                per.append(res)
            keys = ["netlink_s", "file_s", "sysctl_s", "netlink_and_file_s", "iptables_s", "all_work_s", "import_s", "process_wall_s"]
            out["physical"] = {k: summary([p[k] for p in per]) for k in keys}
        self.table("fleet: physical floor per host (no Ansible)", ["what", "median", "min", "max", "n"], [self.srow(k, v) for k, v in out["physical"].items()])
        rows = []
        phys = out["physical"]["netlink_and_file_s"]["median"]
        for e in out["runs"]:
            first, rerun = e.get("first") or {}, e.get("rerun") or {}

            def span(st):
                return "-" if not st or st["n"] < 2 else "%s-%s" % (fmt_s(st["min"]), fmt_s(st["max"]))

            rows.append(
                [
                    e["size"],
                    e["config"],
                    e["variant"] + (" (FAILED)" if e.get("error") else ""),
                    fmt_s(first.get("median")),
                    span(first),
                    fmt_s(rerun.get("median")),
                    span(rerun),
                    fmt_x(ratio(rerun.get("median"), first.get("median"))),
                    fmt_s(e.get("first_cpu_median")),
                    fmt_s(e.get("rerun_cpu_median")),
                    max(e.get("first_changed") or ["-"]),
                    max(e.get("rerun_changed") or ["-"]),
                    fmt_s(e.get("ping_wall")),
                    fmt_s(phys * e["size"]),
                ]
            )
        self.table(
            "fleet: wall time of ansible-playbook, median of %d run(s) each" % self.args.fleet_reps,
            [
                "hosts",
                "config",
                "playbook",
                "first",
                "min-max",
                "re-run",
                "min-max",
                "re-run/first",
                "ctl CPU 1st",
                "ctl CPU 2nd",
                "changed 1st",
                "changed 2nd",
                "ping play",
                "netlink+file x hosts",
            ],
            rows,
        )
        for e in out["runs"]:
            if e["variant"] in (NM_VARIANT, INITSCRIPTS_VARIANT, "classic") and e["size"] == sizes[0] and not e.get("error"):
                self.print_profile(e)
        for size in sizes:
            for config in configs:
                runs = {e["variant"].split(",")[0]: e for e in out["runs"] if e["size"] == size and e["config"] == config and not e.get("error")}
                site = runs.get("bridge+forwarding")
                if site and "classic" in runs:
                    x = ratio(site["first"]["median"], runs["classic"]["first"]["median"])
                    self.target(
                        "fleet",
                        "%s <= 0.5x classic, %d hosts (%s)" % (site["variant"], size, config),
                        x,
                        0.5,
                        x <= 0.5,
                        "%s vs classic %s: %s" % (fmt_s(site["first"]["median"]), fmt_s(runs["classic"]["first"]["median"]), fmt_x(x)),
                    )
                if site and site["rerun"]:
                    x = ratio(site["rerun"]["median"], site["first"]["median"])
                    self.target(
                        "fleet",
                        "%s re-run <= 0.5x first, %d hosts (%s)" % (site["variant"], size, config),
                        x,
                        0.5,
                        x <= 0.5,
                        "re-run %s, first %s: %s" % (fmt_s(site["rerun"]["median"]), fmt_s(site["first"]["median"]), fmt_x(x)),
                    )
                nmrun = runs.get(NM_VARIANT)
                if nmrun and "classic" in runs:
                    x = ratio(nmrun["first"]["median"], runs["classic"]["first"]["median"])
                    self.target(
                        "fleet",
                        "host_bridge on NM hosts <= 1.0x classic (initscripts hosts), %d hosts (%s)" % (size, config),
                        x,
                        1.0,
                        x <= 1.0,
                        "%s vs classic %s: %s" % (fmt_s(nmrun["first"]["median"]), fmt_s(runs["classic"]["first"]["median"]), fmt_x(x)),
                    )
                if nmrun and nmrun["rerun"]:
                    x = ratio(nmrun["rerun"]["median"], nmrun["first"]["median"])
                    self.target(
                        "fleet",
                        "host_bridge on NM hosts: re-run <= 0.5x first, %d hosts (%s)" % (size, config),
                        x,
                        0.5,
                        x <= 0.5,
                        "re-run %s, first %s: %s" % (fmt_s(nmrun["rerun"]["median"]), fmt_s(nmrun["first"]["median"]), fmt_x(x)),
                    )
        self.results["sections"]["fleet"] = out
        if out["failed"]:
            raise RuntimeError("fleet runs failed: %s" % "; ".join(out["failed"]))

    @staticmethod
    def nm_timings(lab):
        """NetworkManager's own timings of the bridging on every host of ``lab`` (from its log), summarised."""
        per = []
        for host in lab.hosts():
            path = os.path.join(host.dir, "NetworkManager.log")
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    timings = kvmbench.nm_log_timings(handle.read())
                if timings:
                    per.append(timings)
        keys = ["activation", "create_to_load", "load_to_adjust", "adjust_to_activate", "activate_to_destroy", "under_checkpoint"]
        return {"hosts": len(per), **{k: summary([p[k] for p in per]) for k in keys}}

    def module_json(self, host, module, args):
        """Run a module directly on the host (as direct_module does) once; return (wall, CPU, its JSON result)."""
        path = os.path.join(self.workdir, "args-%s.json" % module)
        with open(path, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        argv = ["env", "PYTHONPATH=" + kvmbench.COLLECTIONS, PYTHON, os.path.join(MODULE_PATH, module + ".py"), path]
        with kvmbench.ChildClock() as clock:
            proc = host.run(argv, check=False, timeout=300)
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {"failed": True, "msg": (proc.stdout + proc.stderr)[-2000:]}
        if proc.returncode != 0 or result.get("failed"):
            raise RuntimeError("direct run of %s failed: %s" % (module, result.get("msg")))
        return clock.wall, clock.cpu, result

    def nm_direct(self, host):
        """What the NetworkManager path's modules cost on a bridged NetworkManager host without Ansible (no SSH, no
        AnsiballZ): each module run directly, one nmcli and one busctl process, and the port's activation.

        Returns {what: {"wall": summary, "cpu": summary}}; taken after the re-run, so the plan and the
        profile checks find nothing to do, as on a re-run.
        """
        reps = 3 if self.quick else 5
        plan_args = {"nic": NIC, "bridge": BRIDGE, "bootproto": "inherit", "addresses": [], "gateway": "", "dns": [], "stp": False, "forward_delay": 0}
        _w, _c, plan = self.module_json(host, "nm_bridge_plan", plan_args)
        keys = ("name", "type", "interface", "controller", "cloned_mac_address", "autoconnect", "stp", "forward_delay", "ipv4", "ipv6", "settings")
        checks = [{**{k: item[k] for k in keys if k in item}, "_ansible_check_mode": True} for item in plan["keyfiles"]]
        samples = {}

        def add(what, wall, cpu):
            samples.setdefault(what, ([], []))
            samples[what][0].append(wall)
            samples[what][1].append(cpu)

        for _rep in range(reps):
            for what, code in (("python -c pass", "pass"), ("import ansible basic", "import ansible.module_utils.basic")):
                with kvmbench.ChildClock() as clock:
                    host.run([PYTHON, "-c", code])
                add(what, clock.wall, clock.cpu)
            for what, argv in (
                ("one nmcli process (device show)", ["nmcli", "-g", "GENERAL.STATE", "device", "show", NIC]),
                (
                    "one busctl call (a property)",
                    [
                        "busctl",
                        "--system",
                        "get-property",
                        "org.freedesktop.NetworkManager",
                        "/org/freedesktop/NetworkManager",
                        "org.freedesktop.NetworkManager",
                        "Version",
                    ],
                ),
            ):
                with kvmbench.ChildClock() as clock:
                    host.run(argv)
                add(what, clock.wall, clock.cpu)
            add("network_backend_info", *self.module_json(host, "network_backend_info", {"backend": "auto", "profile_format": "auto"})[:2])
            add("ifcfg_info (2 devices)", *self.module_json(host, "ifcfg_info", {"devices": [NIC, BRIDGE]})[:2])
            add("nm_bridge_plan", *self.module_json(host, "nm_bridge_plan", plan_args)[:2])
            for i, args in enumerate(checks):
                add("nm_keyfile check, profile %d" % (i + 1), *self.module_json(host, "nm_keyfile", args)[:2])
            wall, cpu, made = self.module_json(host, "nm_checkpoint", {"action": "create", "timeout": 300})
            add("nm_checkpoint create", wall, cpu)
            add("nm_checkpoint adjust", *self.module_json(host, "nm_checkpoint", {"action": "adjust", "checkpoint": made["checkpoint"], "timeout": 300})[:2])
            with kvmbench.ChildClock() as clock:
                host.run(["nmcli", "--wait", "30", "connection", "up", "uuid", plan["port_uuid"]], timeout=120)
            add("nmcli connection up (the port: the activation)", clock.wall, clock.cpu)
            add("nm_checkpoint destroy", *self.module_json(host, "nm_checkpoint", {"action": "destroy", "checkpoint": made["checkpoint"], "timeout": 300})[:2])
        out = {what: {"wall": summary(w), "cpu": summary(c)} for what, (w, c) in samples.items()}
        self.table(
            "fleet: the NetworkManager path's modules run directly on one bridged host (no SSH, no AnsiballZ)",
            ["what", "wall median", "min", "max", "n", "CPU median"],
            [self.srow(k, v["wall"], fmt_s(v["cpu"]["median"])) for k, v in out.items()],
        )
        return out

    def print_profile(self, entry):
        """Each task's cost in the first run and the re-run of one fleet variant (the last repetition)."""
        by_phase = {}
        for run in entry["runs"]:
            by_phase[run["phase"]] = run  # the last repetition of each phase
        first, rerun = by_phase.get("first"), by_phase.get("rerun")
        if not first:
            return
        hosts = entry["size"]
        again = {t["name"]: t for t in (rerun or {}).get("profile", [])}
        rows = []
        for t in first["profile"]:
            r = again.get(t["name"], {})
            if t["span"] < 0.1 and not t["round_trips"] and r.get("span", 0) < 0.1:
                continue
            name = t["name"].split(" : ", 1)[-1]

            def per_host(value):
                return "-" if value is None else "%.1f" % (value / hosts)

            rows.append(
                [
                    name[:64],
                    (t["action"] or "").rsplit(".", 1)[-1],
                    fmt_s(t["span"]),
                    per_host(t["round_trips"]),
                    per_host(t.get("ssh_ops")),
                    str(t["retries"]),
                    fmt_s(r.get("span")),
                    per_host(r.get("round_trips")),
                    per_host(r.get("ssh_ops")),
                ]
            )
        self.table(
            "fleet: %s on %d hosts, %s: task cost (start to next start) and round trips per host (tasks under 0.1 s "
            "with none left out)" % (entry["variant"], hosts, entry["config"]),
            ["task", "action", "first", "trips/host", "ssh/host", "retries", "re-run", "trips/host", "ssh/host"],
            rows,
        )
        log(
            "  per host: first run %.1f round trips and %s SSH operations (%s), re-run %s and %s; wall %s and %s"
            % (
                first["round_trips_per_host"],
                "-" if first.get("ssh_ops_per_host") is None else "%.1f" % first["ssh_ops_per_host"],
                first.get("ssh_ops"),
                "-" if not rerun else "%.1f" % rerun["round_trips_per_host"],
                "-" if not rerun or rerun.get("ssh_ops_per_host") is None else "%.1f" % rerun["ssh_ops_per_host"],
                fmt_s(first["wall"]),
                fmt_s((rerun or {}).get("wall")),
            )
        )
        for nm_log in entry.get("nm_log", []):
            log(
                "  NetworkManager's log, median over %d hosts: %s"
                % (nm_log["hosts"], ", ".join("%s %s" % (k, fmt_s((v or {}).get("median"))) for k, v in nm_log.items() if k != "hosts"))
            )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes (a smoke run, a few minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: %s" % ",".join(SECTIONS))
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated Ansible configurations: %s" % ",".join(CONFIGS))
    parser.add_argument("--fleet-no-pipelining", action="store_true", help="also run the fleet without pipelining (slow)")
    parser.add_argument("--fleet-sizes", help="comma-separated host counts of the fleet section (default 20,50; 3 with --quick)")
    parser.add_argument("--fleet-site", action="store_true", help="also run the whole playbooks/site.yml (every role) on the smallest fleet")
    parser.add_argument("--fleet-reps", type=int, default=1, help="runs of each fleet playbook, each on a fresh lab (default 1)")
    parser.add_argument(
        "--no-fleet-nm", action="store_true", help="leave out the NetworkManager column (host_bridge on NetworkManager hosts, and on network-scripts hosts)"
    )
    parser.add_argument("--fleet-all-reruns", action="store_true", help="also re-run the classic playbook on the larger fleets")
    parser.add_argument("--lab-id", type=int, help="run every section on this one lab id, one section after the other (default: ids 30-34)")
    parser.add_argument("--json", default="/tmp/kvmb-bench-results.json", help="where to write the raw results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("the namespace lab needs root")
    if args.lab_id is not None:
        LAB_IDS.update(dict.fromkeys(LAB_IDS, args.lab_id))
    only = [s for s in args.only.split(",") if s]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error("unknown sections: %s" % ", ".join(unknown))
    start = time.monotonic()
    failed = []
    with tempfile.TemporaryDirectory(prefix="kvmb-bench-") as workdir:
        bench = Bench(args, workdir)
        m = bench.results["machine"]
        log(
            "kvmhost.bridging benchmarks%s: %s CPUs (%s), %s MiB, kernel %s, Python %s, ansible-core %s, pyroute2 %s; load %s"
            % (
                " (quick)" if args.quick else "",
                m["nproc"],
                m["cpu"],
                m["memory_mib"],
                m["kernel"],
                m["python"],
                m["ansible_core"],
                m["pyroute2"],
                m["loadavg_at_start"],
            )
        )
        log("configurations: %s" % ", ".join(bench.configs))
        for section in SECTIONS:
            if section not in only:
                continue
            log("\n== %s ==" % section)
            t0 = time.monotonic()
            try:
                getattr(bench, section)()
            except Exception as exc:  # report and go on with the next section; the lab is down already
                failed.append(section)
                bench.results["sections"].setdefault(section, {})["error"] = str(exc)
                log("  %s FAILED: %s" % (section, exc))
                traceback.print_exc()
            log("  (%s took %.0f s, load %s)" % (section, time.monotonic() - t0, kvmbench.loadavg()))
    bench.results["wall_s"] = time.monotonic() - start
    bench.results["machine"]["loadavg_at_end"] = kvmbench.loadavg()
    log("\n== targets ==")
    for t in bench.results["targets"]:
        log("  %-7s %-62s %s" % ({True: "met", False: "MISSED", None: "n/a"}[t["met"]], t["target"], t["detail"]))
    for n in bench.results["notes"]:
        log("  note: %s" % n)
    with open(args.json, "w") as handle:
        json.dump(bench.results, handle, indent=1, default=str)
    log("\nraw results: %s; total %.0f s" % (args.json, bench.results["wall_s"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

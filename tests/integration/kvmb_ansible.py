"""Run Ansible against lab hosts and collect structured results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)
# Mitogen for Ansible: the version pinned in requirements-mitogen.txt, installed by scripts/setup.sh
# (pip --target, as bench/ does) into this directory, not into the venv.
MITOGEN_PIN = os.path.join(ROOT, "requirements-mitogen.txt")


def mitogen_dir():
    """Where scripts/setup.sh installs the pinned Mitogen (the bench's cache directory)."""
    with open(MITOGEN_PIN) as handle:
        pin = next(line.strip() for line in handle if line.strip().startswith("mitogen=="))
    return os.path.join(os.path.expanduser("~"), ".cache", "kvmhost-bench", "mitogen-" + pin.split("==", 1)[1])


# The connection and strategy configurations the integration tests run under.
CONFIGS = ("ssh", "mitogen")


def config_env(name):
    """The environment of one configuration: plain SSH (linear strategy), or Mitogen's mitogen_linear over SSH."""
    if name == "ssh":
        return {}
    if name == "mitogen":
        path = mitogen_dir()
        if not os.path.isdir(os.path.join(path, "ansible_mitogen")):
            raise RuntimeError("Mitogen is not installed in %s: run `. scripts/setup.sh`" % path)
        return {
            "ANSIBLE_STRATEGY": "mitogen_linear",
            "ANSIBLE_STRATEGY_PLUGINS": os.path.join(path, "ansible_mitogen", "plugins", "strategy"),
            "PYTHONPATH": path + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
    raise ValueError(name)


@dataclass
class PlayResult:
    rc: int
    stats: dict
    results: list = field(default_factory=list)
    output: str = ""

    def for_host(self, host, task=None):
        name = host if isinstance(host, str) else host.name
        return [r["result"] for r in self.results if r["host"] == name and (task is None or r["task"] == task)]

    def changed(self, host):
        name = host if isinstance(host, str) else host.name
        return self.stats.get(name, {}).get("changed")


class AnsibleRunner:
    """ansible-playbook against a lab's inventory, results recorded as JSON."""

    def __init__(self, lab, workdir, config="ssh"):
        self.lab = lab
        self.workdir = workdir
        self.config = config
        self.config_env = config_env(config)

    def env(self, extra=None):
        env = dict(os.environ)
        env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
        env.update(
            {
                "ANSIBLE_HOST_KEY_CHECKING": "False",
                "ANSIBLE_PIPELINING": "True",
                "ANSIBLE_CALLBACKS_ENABLED": "kvmb_record",
                "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
                "ANSIBLE_DEPRECATION_WARNINGS": "False",
                "ANSIBLE_NOCOLOR": "True",
                "ANSIBLE_FORCE_COLOR": "False",
                "ANSIBLE_ROLES_PATH": os.path.join(ROOT, "roles"),
            }
        )
        env.update(self.config_env)
        if extra:
            env.update(extra)
        return env

    def playbook(self, playbook, hosts=None, extra_vars=None, check=False, diff=False, forks=5, env=None, timeout=900, args=()):
        """Run a playbook file (a path) or YAML text; return a PlayResult."""
        self.lab.write_inventory()
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            if "\n" in playbook or not os.path.exists(playbook):
                path = os.path.join(tmp, "play.yml")
                with open(path, "w") as handle:
                    handle.write(playbook)
            else:
                path = playbook
            record = os.path.join(tmp, "record.jsonl")
            argv = [os.path.join(BIN, "ansible-playbook"), "-i", self.lab.inventory_path, "-f", str(forks), path, *args]
            if hosts:
                names = [h if isinstance(h, str) else h.name for h in hosts]
                argv += ["--limit", ",".join(names)]
            if extra_vars:
                argv += ["-e", json.dumps(extra_vars)]
            if check:
                argv.append("--check")
            if diff:
                argv.append("--diff")
            proc = subprocess.run(
                argv,
                env=self.env(dict(env or {}, KVMB_RECORD_FILE=record)),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
            results, stats = [], {}
            if os.path.exists(record):
                with open(record) as handle:
                    for line in handle:
                        item = json.loads(line)
                        if item["type"] == "stats":
                            stats = item["stats"]
                        else:
                            results.append(item)
        return PlayResult(rc=proc.returncode, stats=stats, results=results, output=proc.stdout)

    def module(self, host, module, args=None, check=False, diff=False, environment=None):
        """Run one module task on one host; return its result dict (failed or not)."""
        task = {"name": "under test", module: args or {}}
        if environment:
            task["environment"] = environment
        if check:
            task["check_mode"] = True
        if diff:
            task["diff"] = True
        play = [{"hosts": host.name, "gather_facts": False, "tasks": [task]}]
        result = self.playbook(json.dumps(play, indent=1) + "\n")
        found = result.for_host(host, "under test")
        if not found:
            raise AssertionError("no result for %s on %s; ansible said:\n%s" % (module, host.name, result.output))
        return found[-1]

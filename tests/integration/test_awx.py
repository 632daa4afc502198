"""AWX's side of the collection: the execution environment definition and ansible-runner.

No container engine exists here, so of the EE only ``ansible-builder create``
(Containerfile and build context) can run; the playbook then runs the way AWX
runs a job, through ``ansible-runner run`` on a private_data_dir with the
lab host as inventory, a machine credential (env/ssh_key) and extra vars.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)
EE_FILE = os.path.join(ROOT, "execution-environment.yml")
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.expanduser("~/.ansible/collections")).split(os.pathsep)[0]
COLLECTION_DEST = "/usr/share/ansible/collections/ansible_collections/kvmhost/bridging"

PLAYBOOK = "host_bridge.yml"
# The host_bridge role's one task (the kvmhost.bridging.host_bridge action).
BRIDGE_TASK = "Bridge the NIC (plan, arm the guard, apply, confirm over a fresh connection)"


def _tool(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        pytest.skip("%s is not installed in %s (run scripts/setup.sh)" % (name, BIN))
    return path


def _env():
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


# -- the execution environment -------------------------------------------------


@pytest.fixture(scope="module")
def ee_context(tmp_path_factory):
    """``ansible-builder create`` of execution-environment.yml into a temp dir."""
    context = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run(
        [_tool("ansible-builder"), "create", "-f", EE_FILE, "-c", str(context), "--output-filename", "Containerfile"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    with open(EE_FILE) as handle:
        definition = yaml.safe_load(handle)
    with open(context / "Containerfile") as handle:
        containerfile = handle.read()
    return {"dir": context, "definition": definition, "containerfile": containerfile, "output": proc.stdout}


def _dev_pin(package):
    """The version requirements-dev.txt pins for ``package`` on this controller's Python."""
    from packaging.requirements import Requirement

    with open(os.path.join(ROOT, "requirements-dev.txt")) as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            req = Requirement(line)
            if req.name == package and (req.marker is None or req.marker.evaluate()):
                return str(req.specifier)
    raise AssertionError("requirements-dev.txt pins no %s" % package)


def test_ee_containerfile_builds_from_the_definition(ee_context):
    definition, containerfile = ee_context["definition"], ee_context["containerfile"]
    assert definition["version"] == 3
    base = definition["images"]["base_image"]["name"]
    assert re.search(r":[\w.-]+$", base), "the base image needs a tag"
    assert 'ARG EE_BASE_IMAGE="%s"' % base in containerfile
    # The EE runs the ansible-core and ansible-runner the tests run with.
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"$', containerfile, re.M).group(1).split()
    assert "ansible-core%s" % _dev_pin("ansible-core") in refs
    assert "ansible-runner%s" % _dev_pin("ansible-runner") in refs
    # Python and system requirements go through the builder's introspection ...
    assert "introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    # ... and the stages come in the order podman/docker need.
    stages = re.findall(r"^FROM \S+ AS (\w+)$", containerfile, re.M)
    assert stages == ["base", "builder", "final"]
    # Nothing of this machine leaks into the image definition.
    assert ROOT not in containerfile


def test_ee_context_carries_the_collection_requirements(ee_context):
    from bindep.depends import Depends
    from packaging.requirements import Requirement

    build = ee_context["dir"] / "_build"
    with open(os.path.join(ROOT, "requirements.txt")) as handle:
        assert (build / "requirements.txt").read_text() == handle.read()
    with open(os.path.join(ROOT, "bindep.txt")) as handle:
        assert (build / "bindep.txt").read_text() == handle.read()

    python = {Requirement(line).name for line in (build / "requirements.txt").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {"pyroute2", "jmespath"} <= python

    # What bindep installs in an RPM-based image: runtime packages in the final
    # stage, and the compile profile (libvirt-python's wheel) only in the builder.
    depends = Depends((build / "bindep.txt").read_text())
    rpm = ["platform:rpm", "platform:redhat", "platform:fedora"]
    runtime = {rule[0] for rule in depends.active_rules(["default", *rpm])}
    compile_ = {rule[0] for rule in depends.active_rules(["compile", *rpm])}
    assert {"iproute", "iptables-nft", "openssh-clients", "libvirt-libs"} <= runtime
    assert not runtime & {"libvirt-devel", "gcc", "python3-devel"}
    assert {"libvirt-devel", "gcc", "python3-devel", "pkgconf-pkg-config"} <= compile_ - runtime


def test_ee_context_installs_the_collection(ee_context):
    collection = ee_context["dir"] / "_build" / "collection"
    galaxy = yaml.safe_load((collection / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("kvmhost", "bridging")
    assert "COPY _build/collection %s" % COLLECTION_DEST in ee_context["containerfile"]
    # Every module, role and playbook of the working tree is in the context.
    for part in ("plugins", "roles", "playbooks"):
        want = set()
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, part)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            want |= {os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames if not f.endswith(".pyc")}
        have = {str(p.relative_to(collection)) for p in (collection / part).rglob("*") if p.is_file()}
        assert want == have, "missing from the EE: %s; not in the tree: %s" % (sorted(want - have), sorted(have - want))
    assert (collection / "meta" / "runtime.yml").is_file()


# -- ansible-runner, as AWX runs a job ---------------------------------------------


def _private_data_dir(base, lab, host, extravars):
    """An ansible-runner private_data_dir laid out as AWX lays one out for a job.

    project/ holds the collection's playbooks as AWX's project sync checks
    them out; the roles come from the installed collection, by FQCN.
    """
    pdd = base / "job"
    shutil.copytree(os.path.join(ROOT, "playbooks"), pdd / "project")
    for sub in ("inventory", "env"):
        (pdd / sub).mkdir(parents=True)
    inventory = {
        "all": {
            "hosts": {host.name: {"ansible_host": host.address}},
            "vars": {
                "ansible_user": "root",
                "ansible_python_interpreter": lab.python,
            },
        }
    }
    (pdd / "inventory" / "hosts.json").write_text(json.dumps(inventory))
    # The machine credential: AWX hands the key to ansible-runner, which loads
    # it into an ssh-agent for the job; the inventory names no key file.
    with open(lab.key) as handle:
        (pdd / "env" / "ssh_key").write_text(handle.read())
    (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    (pdd / "env" / "envvars").write_text(
        json.dumps(
            {
                "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
                "ANSIBLE_HOST_KEY_CHECKING": "False",
                "ANSIBLE_SSH_ARGS": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                "ANSIBLE_PIPELINING": "True",
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
            }
        )
    )
    (pdd / "env" / "settings").write_text(json.dumps({"job_timeout": 600, "idle_timeout": 300}))
    return pdd


def _run_job(pdd, ident):
    proc = subprocess.run(
        [_tool("ansible-runner"), "run", str(pdd), "-p", PLAYBOOK, "--ident", ident],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
        check=False,
    )
    artifacts = pdd / "artifacts" / ident
    events = []
    for path in sorted((artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0])):
        events.append(json.loads(path.read_text()))
    return {
        "proc": proc,
        "status": (artifacts / "status").read_text().strip(),
        "rc": int((artifacts / "rc").read_text().strip()),
        "events": events,
        "stdout": (artifacts / "stdout").read_text(),
    }


def _link(host, name):
    proc = host.run(["ip", "-j", "-d", "addr", "show", "dev", name], check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def _task_results(job, host):
    """The host's task results (runner_on_ok, _failed, _skipped, _unreachable), not the runner_on_start of each task."""
    return [e for e in job["events"] if e["event"].startswith("runner_on_") and e["event"] != "runner_on_start" and e["event_data"].get("host") == host.name]


def test_collection_declares_its_requirements_to_other_ees(tmp_path):
    """An EE that installs this collection learns its requirements from meta/execution-environment.yml."""
    tree = tmp_path / "ansible_collections" / "kvmhost" / "bridging"
    shutil.copytree(os.path.join(ROOT, "meta"), tree / "meta")
    for name in ("galaxy.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(os.path.join(ROOT, name), tree / name)
    proc = subprocess.run(
        [_tool("ansible-builder"), "introspect", "--sanitize", str(tmp_path)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    data = yaml.safe_load(proc.stdout.split("\n", 1)[1])
    python = [line.split("#")[0].strip() for line in data["python"]]
    system = [line.split("#")[0].strip() for line in data["system"]]
    assert "pyroute2>=0.7.3" in python
    assert "iproute [platform:rpm]" in system and "iptables-nft [platform:rpm]" in system


def test_ansible_runner_runs_host_bridge_against_a_lab_host(lab, host, tmp_path):
    if not os.path.exists(os.path.join(ROOT, "playbooks", PLAYBOOK)):
        pytest.skip("playbooks/%s is not there yet" % PLAYBOOK)
    # As on a real host, the host's own name resolves; otherwise every fact
    # gathering waits 10s for a DNS server the lab cannot reach (socket.getfqdn).
    host.write_file("/etc/hosts", (host.read_file("/etc/hosts") or "") + "%s %s\n" % (host.address, host.name))
    eth0 = _link(host, "eth0")
    # AWX's survey answers arrive as extra vars: bridge the NIC with the default
    # route (eth0, the one the job's SSH session runs over) into a bridge of our naming.
    extravars = {"target_hosts": host.name, "host_bridge_nic": "auto", "host_bridge_name": "brawx"}
    pdd = _private_data_dir(tmp_path, lab, host, extravars)

    job = _run_job(pdd, "job-1")
    assert job["status"] == "successful", job["stdout"]
    assert job["rc"] == 0
    assert job["proc"].returncode == 0

    # The job events AWX shows: the play, each task's result on the host, the stats.
    kinds = [e["event"] for e in job["events"] if e["event"] != "verbose"]
    assert kinds[0] == "playbook_on_start" and kinds[-1] == "playbook_on_stats"
    # The machine credential went through the job's ssh-agent ...
    assert any(e["event"] == "verbose" and "Identity added" in e["stdout"] for e in job["events"])
    # ... and is not left on disk.
    assert not (pdd / "artifacts" / "job-1" / "ssh_key_data").exists()
    plays = [e["event_data"]["play"] for e in job["events"] if e["event"] == "playbook_on_play_start"]
    assert plays == ["Bridge a NIC of the KVM hosts"]
    results = _task_results(job, host)
    assert not [e for e in results if e["event"] in ("runner_on_failed", "runner_on_unreachable")]
    changed = {e["event_data"]["task"] for e in results if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")}
    assert BRIDGE_TASK in changed
    bridged = [e["event_data"]["res"] for e in results if e["event_data"]["task"] == BRIDGE_TASK]
    assert [res["planned"][0] for res in bridged] == ["write /etc/sysconfig/network-scripts/ifcfg-brawx"]
    assert bridged[-1]["guard"]["decision"]["confirmed"] is True
    stats = job["events"][-1]["event_data"]
    assert host.name in stats["ok"] and host.name in stats["changed"]
    assert not stats["failures"] and not stats["dark"]

    # The host's kernel state: eth0 is a port of brawx, which has eth0's MAC,
    # its address and the default route; the job's SSH session survived it all.
    bridge, port = _link(host, "brawx"), _link(host, "eth0")
    assert bridge is not None and bridge["linkinfo"]["info_kind"] == "bridge"
    assert port["master"] == "brawx"
    assert bridge["address"] == eth0["address"]
    ipv4 = [a["local"] for a in bridge["addr_info"] if a["family"] == "inet"]
    assert ipv4 == [host.address]
    assert not [a for a in port["addr_info"] if a["family"] == "inet"]
    route = json.loads(host.run(["ip", "-j", "-4", "route", "show", "default"]).stdout)
    assert [r["dev"] for r in route] == ["brawx"]
    assert "BRIDGE=brawx" in host.read_file("/etc/sysconfig/network-scripts/ifcfg-eth0")

    # The same job again, as a scheduled AWX job would run it: nothing to change.
    again = _run_job(pdd, "job-2")
    assert again["status"] == "successful", again["stdout"]
    stats = again["events"][-1]["event_data"]
    assert host.name in stats["ok"] and host.name not in stats["changed"]
    assert not [e for e in _task_results(again, host) if "guard" in e["event_data"]["res"]]

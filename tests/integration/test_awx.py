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
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)
EE_FILE = os.path.join(ROOT, "meta", "execution-environment.yml")
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.expanduser("~/.ansible/collections")).split(os.pathsep)[0]
COLLECTION_DEST = "/usr/share/ansible/collections/ansible_collections/kvmhost/bridging"

PLAYBOOK = "tiny.yml"
TINY_PLAYBOOK = """\
- name: Bridge a NIC (harness stand-in)
  hosts: "{{ target_hosts | default('all') }}"
  gather_facts: false
  tasks:
    - name: Make the bridge
      ansible.builtin.command:
        argv: [ip, link, add, "{{ host_bridge_name }}", type, bridge]
      changed_when: true
    - name: Enslave the NIC
      ansible.builtin.command:
        argv: [ip, link, set, "{{ host_bridge_nic }}", master, "{{ host_bridge_name }}"]
      changed_when: true
"""


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
    """``ansible-builder create`` of meta/execution-environment.yml into a temp dir."""
    context = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run(
        [_tool("ansible-builder"), "create", "-f", EE_FILE, "-c", str(context), "--output-filename", "Containerfile"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, check=False,
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

    python = {Requirement(line).name for line in (build / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
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
        assert want <= have, "missing from the EE: %s" % sorted(want - have)
    assert (collection / "meta" / "runtime.yml").is_file()


# -- ansible-runner, as AWX runs a job ---------------------------------------------


def _private_data_dir(base, lab, host, playbook_text, extravars):
    """An ansible-runner private_data_dir laid out as AWX lays one out for a job."""
    pdd = base / "job"
    for sub in ("project", "inventory", "env"):
        (pdd / sub).mkdir(parents=True)
    (pdd / "project" / PLAYBOOK).write_text(playbook_text)
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
    (pdd / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }))
    (pdd / "env" / "settings").write_text(json.dumps({"job_timeout": 600, "idle_timeout": 300}))
    return pdd


def _run_job(pdd, ident):
    proc = subprocess.run(
        [_tool("ansible-runner"), "run", str(pdd), "-p", PLAYBOOK, "--ident", ident],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900, check=False,
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


def _bridge_of(host, nic):
    info = json.loads(host.run(["ip", "-j", "-d", "link", "show", "dev", nic]).stdout)[0]
    return info.get("master")


def test_ansible_runner_runs_the_playbook_against_a_lab_host(lab, host, tmp_path):
    extravars = {"host_bridge_nic": "eth1", "host_bridge_name": "breth1"}
    pdd = _private_data_dir(tmp_path, lab, host, TINY_PLAYBOOK, extravars)

    job = _run_job(pdd, "job-1")
    assert job["status"] == "successful", job["stdout"]
    assert job["rc"] == 0
    assert job["proc"].returncode == 0

    # The job events AWX shows: the play, each task's result on the host, the stats.
    kinds = [e["event"] for e in job["events"] if e["event"] != "verbose"]
    assert kinds[0] == "playbook_on_start" and kinds[-1] == "playbook_on_stats"
    # The machine credential went through the job's ssh-agent ...
    assert any(e["event"] == "verbose" and "Identity added" in e["stdout"] for e in job["events"])
    assert "playbook_on_play_start" in kinds
    results = [e for e in job["events"] if e["event"].startswith("runner_on_")]
    assert results and {e["event_data"]["host"] for e in results} == {host.name}
    assert not [e for e in results if e["event"] in ("runner_on_failed", "runner_on_unreachable")]
    stats = job["events"][-1]["event_data"]
    assert host.name in stats["ok"] and not stats["failures"] and not stats["dark"]
    # The extra vars reached the play: AWX's survey answers arrive the same way.
    assert any(e["event_data"].get("res", {}).get("cmd", [])[-1:] == ["breth1"]
               for e in results if e["event"] == "runner_on_ok")

    # The host's kernel state is what the playbook promised.
    assert _bridge_of(host, "eth1") == "breth1"
    bridge = json.loads(host.run(["ip", "-j", "-d", "link", "show", "dev", "breth1"]).stdout)[0]
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    # ... and is not left on disk.
    assert not (pdd / "artifacts" / "job-1" / "ssh_key_data").exists()

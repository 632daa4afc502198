"""firewalld_forward's main(): which firewall-cmd calls it makes, against a stand-in firewall-cmd.

The stand-in answers the read calls from a listing and records every call;
it changes nothing, so these tests see the calls, not firewalld's effects
(the integration tests run the real firewalld).
"""

from __future__ import annotations

import json
import os
import stat
import textwrap

import pytest
from module_runner import run_main

from ansible_collections.kvmhost.bridging.plugins.modules import firewalld_forward

ZONES = "public\n  interfaces: eth0\n  forward: yes\n  masquerade: no\n\nhome\n  interfaces: \n  forward: no\n  masquerade: no\n"
READS = ("--state", "--version", "--get-default-zone", "--list-all-zones", "--list-all-policies")

FAKE = textwrap.dedent("""\
    #!/usr/bin/env python3
    import json, os, sys
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    with open(os.path.join(here, "calls.log"), "a") as log:
        log.write(json.dumps(args) + "\\n")
    conf = json.load(open(os.path.join(here, "conf.json")))
    last = args[-1] if args else ""
    if last == "--state":
        print("running" if conf["running"] else "not running")
        sys.exit(0 if conf["running"] else 252)
    answers = {"--version": "1.3.3", "--get-default-zone": "public", "--list-all-zones": conf["zones"],
               "--list-all-policies": ""}
    if last in answers:
        print(answers[last])
    sys.exit(0)
""")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "firewall-cmd"
    script.write_text(FAKE)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", "%s%s%s" % (bindir, os.pathsep, os.environ.get("PATH", "")))

    def setup(running=True, zones=ZONES):
        (bindir / "conf.json").write_text(json.dumps({"running": running, "zones": zones}))

    def calls():
        log = bindir / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [json.loads(line) for line in lines]

    setup.calls = calls
    return setup


def writes(calls):
    return [c for c in calls if c[-1] not in READS]


def test_check_mode_reads_only_and_shows_the_change(fake):
    fake()
    result = run_main(firewalld_forward, {"zones": [{"name": "public", "interfaces": ["breth0"], "forward": True}]}, check=True, diff=True)
    assert result["changed"] and not result.get("failed")
    assert [c["command"] for c in result["changes"]] == [
        "firewall-cmd --permanent --zone=public --change-interface=breth0",
        "firewall-cmd --zone=public --change-interface=breth0",
    ]
    assert "zone public: interfaces=[breth0 eth0] forward=yes" in result["diff"][0]["after"]
    assert writes(fake.calls()) == []


def test_apply_makes_the_planned_calls_in_order(fake):
    fake()
    result = run_main(firewalld_forward, {"zones": [{"name": "home", "interfaces": ["br1"], "forward": True}]})
    assert result["changed"]
    assert writes(fake.calls()) == [
        ["--permanent", "--zone=home", "--change-interface=br1"],
        ["--permanent", "--zone=home", "--add-forward"],
        ["--zone=home", "--change-interface=br1"],
        ["--zone=home", "--add-forward"],
    ]


def test_nothing_to_do_changes_nothing(fake):
    fake()
    result = run_main(firewalld_forward, {"zones": [{"name": "public", "interfaces": ["eth0"], "forward": True}]})
    assert not result["changed"] and result["changes"] == []
    assert writes(fake.calls()) == []


def test_bad_input_fails_before_any_change(fake):
    fake()
    result = run_main(
        firewalld_forward,
        {
            "zones": [{"name": "public", "interfaces": ["br0"], "forward": True}],
            "policies": [{"name": "p", "ingress_zones": ["nosuch"], "egress_zones": ["public"]}],
        },
    )
    assert result["failed"] and "names zone nosuch" in result["msg"]
    assert writes(fake.calls()) == []


def test_not_running(fake):
    fake(running=False)
    result = run_main(firewalld_forward, {"zones": [{"name": "public", "interfaces": ["br0"]}]})
    assert result["failed"] and "firewalld is not running" in result["msg"]
    result = run_main(firewalld_forward, {"zones": [{"name": "public", "interfaces": ["br0"]}], "require_running": False})
    assert not result["changed"] and result["firewalld"]["running"] is False
    assert writes(fake.calls()) == []

"""Fixtures of the integration tests: the namespace lab, fresh hosts, Ansible.

The lab id comes from KVMB_LAB_ID (default 0). The lab is brought up once per
session and torn down at the end, also when tests fail.

Under pytest-xdist (scripts/test.sh runs ``-n N --dist loadfile``) each worker
has a lab of its own: lab KVMB_LAB_ID + the worker's number (gw0 takes
KVMB_LAB_ID, gw1 the next id, ...), brought up and torn down by that worker.
Test files marked ``lease_wait`` (they mostly wait out DHCP lease times) are
put first, so that one worker sleeps through them while the others run the
rest.
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
sys.path.insert(0, HERE)

import kvmblab  # noqa: E402
from kvmb_ansible import CONFIGS, AnsibleRunner  # noqa: E402


def lab_id():
    """This process's lab id: KVMB_LAB_ID, plus the xdist worker's number (gwN) when run by a worker."""
    base = int(os.environ.get("KVMB_LAB_ID", "0"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return base + int(worker[2:]) if worker.startswith("gw") else base


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "lease_wait: the test mostly waits out DHCP lease times; such test files are scheduled first",
    )


@pytest.hookimpl(trylast=True)  # after pytest's own fixture-scope ordering, which this keeps within each group
def pytest_collection_modifyitems(items):
    """Lease-bound tests first: with --dist loadfile one worker sleeps through them while the others work."""
    items.sort(key=lambda item: item.get_closest_marker("lease_wait") is None)


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:  # a failure, not a skip: without root not one integration test would run
        pytest.fail("the namespace lab needs root: run the integration tests as root", pytrace=False)
    the_lab = kvmblab.Lab(lab_id())
    the_lab.down()  # anything left from an earlier, killed run
    try:
        the_lab.up(hosts=0)
        yield the_lab
    finally:
        the_lab.down()


@contextlib.contextmanager
def fresh_host(lab, **kind):
    """A new lab host of ``kind`` (lab.add_host's options), removed afterwards, also when the test fails."""
    the_host = lab.add_host(**kind)
    try:
        yield the_host
    finally:
        lab.remove_host(the_host)


@pytest.fixture
def host(lab):
    """A fresh lab host for one test, removed afterwards."""
    with fresh_host(lab) as the_host:
        yield the_host


@pytest.fixture
def stock_host(lab):
    """A fresh lab host with the stock RHEL firewall, at runtime and in /etc/sysconfig/iptables."""
    with fresh_host(lab, stock_firewall=True) as the_host:
        yield the_host


@pytest.fixture
def firewalld_host(lab):
    """A fresh lab host running Debian's firewalld (stock configuration) on its own system bus."""
    with fresh_host(lab, firewalld=True) as the_host:
        yield the_host


@pytest.fixture(scope="session")
def ansible(lab, tmp_path_factory):
    return AnsibleRunner(lab, str(tmp_path_factory.mktemp("ansible")))


@pytest.fixture(scope="session", params=CONFIGS)
def any_ansible(lab, tmp_path_factory, request):
    """Ansible under each tested configuration in turn: plain SSH (linear), and Mitogen's mitogen_linear over SSH."""
    return AnsibleRunner(lab, str(tmp_path_factory.mktemp("ansible-" + request.param)), config=request.param)


@pytest.fixture
def nm_host(lab):
    """A fresh lab host that runs real NetworkManager on keyfile profiles (eth0 static, eth1 no address)."""
    with fresh_host(lab, networkmanager=True) as the_host:
        yield the_host

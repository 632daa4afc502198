"""dhcp_client_info end to end: a DHCP client's command line in this network namespace is found, and nothing changes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from module_runner import run_main

from ansible_collections.kvmhost.bridging.plugins.modules import dhcp_client_info


def test_finds_a_client_by_its_command_line():
    interface = "kvmb%s" % uuid.uuid4().hex[:8]  # a name no real client serves
    # A stand-in: Python, run under a dhclient command line (-c takes a value for both), which is all the module reads.
    argv = ["dhclient", "-c", "import time; time.sleep(120)", interface]
    stand_in = subprocess.Popen(argv, executable=sys.executable)
    try:
        for check in (False, True):
            deadline = time.monotonic() + 10
            result = run_main(dhcp_client_info, {"interfaces": [interface]}, check=check)
            while not result["clients"] and time.monotonic() < deadline:  # until the child has exec'd
                time.sleep(0.05)
                result = run_main(dhcp_client_info, {"interfaces": [interface]}, check=check)
            assert result["changed"] is False
            assert result["clients"] == [{"pid": stand_in.pid, "name": "dhclient", "interface": interface, "family": "ipv4", "argv": argv}]
            assert isinstance(result["daemons"], list)
        assert run_main(dhcp_client_info, {"interfaces": ["kvmb-none"]})["clients"] == []
    finally:
        stand_in.kill()
        stand_in.wait()

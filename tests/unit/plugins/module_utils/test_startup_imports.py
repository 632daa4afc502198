"""What a module's no-op imports: AnsiballZ compiles every imported module_utils file on each run.

Each case imports a module file in a fresh interpreter (as AnsiballZ would),
runs the no-op path where one is cheap to reach, and checks which layers of
the collection are loaded. The bench floor (bench/run.py --only floor)
measures what this saves; these tests keep the lazy imports from being lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

BASE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))), ".build", "unit")
PKG = "ansible_collections.kvmhost.bridging.plugins."


def loaded_after(code):
    """Run ``code`` in a fresh Python with the working tree importable; return the collection's and pyroute2's loaded modules."""
    listing = "sorted(m for m in sys.modules if m.startswith(%r) or m.split('.')[0] == 'pyroute2')" % PKG
    script = "import sys, json\nsys.path.insert(0, %r)\n%s\nprint(json.dumps(%s))" % (BASE, code, listing)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return {name.replace(PKG, "") for name in json.loads(out.splitlines()[-1])}


def test_the_bridge_module_imports_no_applier():
    loaded = loaded_after("import %smodules.bridge" % PKG)
    assert "module_utils._bridge_runtime" in loaded and "module_utils._bridge_plan" in loaded
    assert "module_utils._kernel_apply" not in loaded
    assert "module_utils._pyroute2_dep" not in loaded and "pyroute2" not in loaded


@pytest.mark.parametrize("module", ["modules.guard", "module_utils._guard"])
def test_the_guard_imports_no_kernel_layer_until_it_reads_the_runtime(module):
    loaded = loaded_after("import %s%s" % (PKG, module))
    assert "module_utils._guard_state" in loaded
    assert not loaded & {"module_utils._kernel_apply", "module_utils._kernel_snapshot", "module_utils._bridge_plan", "module_utils._rtnl", "pyroute2"}


def test_a_runtime_snapshot_loads_what_the_detached_watcher_restores_with():
    """The watcher outlives the module run (and its AnsiballZ files): arm's snapshot must have imported the restore's layers."""
    loaded = loaded_after("from %smodule_utils import _guard\n_guard.NetlinkRuntime().snapshot()" % PKG)
    assert {"module_utils._kernel_apply", "module_utils._kernel_snapshot", "module_utils._dhcp_client", "module_utils._bridge_plan"} <= loaded

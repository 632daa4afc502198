# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional pyroute2 dependency, imported once, with a clear error if missing.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

__all__ = ["HAS_PYROUTE2", "PYROUTE2_IMPORT_ERROR", "PYROUTE2_VERSION", "IPRoute", "NetlinkError", "assert_pyroute2"]

try:
    import pyroute2
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    PYROUTE2_VERSION = None
    IPRoute = None

    class NetlinkError(Exception):
        """Placeholder so that except clauses still work without pyroute2."""

        code = 0

else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
    PYROUTE2_VERSION = getattr(pyroute2, "__version__", "unknown")


def assert_pyroute2(module):
    """Fail the module with an actionable message when pyroute2 is missing."""
    if not HAS_PYROUTE2:
        module.fail_json(
            msg=missing_required_lib(
                "pyroute2",
                reason="to manage links over netlink",
                url="https://pypi.org/project/pyroute2/",
            )
            + " On RHEL-family hosts install python3-pyroute2 (EPEL on EL8); on Debian, python3-pyroute2;"
            " the kvmhost.bridging roles install it for you.",
            exception=PYROUTE2_IMPORT_ERROR,
        )

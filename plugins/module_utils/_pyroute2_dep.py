# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional pyroute2 dependency, imported on first use, with a clear error if missing.

Importing pyroute2 costs about 0.1 s of CPU on a managed host, as much as the
rest of a module run. Reads go through the standard-library reader in _rtnl,
so tap and bridge_info import pyroute2 only when they change something, and a
task with nothing to do never pays for it.

- ``iproute()`` returns a new pyroute2 IPRoute, or raises ModuleError with
  what to install when pyroute2 is missing.
- ``netlink_error()`` is the class to catch: pyroute2's NetlinkError once
  pyroute2 is imported, else a placeholder that nothing raises (no pyroute2
  error can exist before pyroute2 is imported), so that
  ``except netlink_error():`` never imports it.
- ``assert_pyroute2(module)`` fails the module up front, for modules that
  always need pyroute2.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

__all__ = ["assert_pyroute2", "iproute", "missing_message", "netlink_error", "pyroute2_status"]


class _NoNetlinkError(Exception):
    """Stands for pyroute2's NetlinkError while pyroute2 is not imported; never raised."""

    code = 0


_STATE: dict[str, Any] = {}


def pyroute2_status() -> tuple[bool, str | None]:
    """Import pyroute2 once; return (available, import traceback or None)."""
    if not _STATE:
        try:
            import pyroute2
            import pyroute2.netlink.exceptions  # netlink_error() finds it in sys.modules
        except ImportError:
            _STATE.update(module=None, error=traceback.format_exc())
        else:
            _STATE.update(module=pyroute2, error=None)
    return _STATE["module"] is not None, _STATE["error"]


def netlink_error() -> type[Any]:
    """pyroute2's NetlinkError if pyroute2 has been imported (by anyone), else a class nothing raises."""
    exceptions = sys.modules.get("pyroute2.netlink.exceptions")
    return getattr(exceptions, "NetlinkError", None) or _NoNetlinkError


def missing_message() -> str:
    missing: str = missing_required_lib("pyroute2", reason="to manage links over netlink", url="https://pypi.org/project/pyroute2/")
    return missing + " On RHEL-family hosts install python3-pyroute2 (EPEL on EL8); on Debian, python3-pyroute2; the kvmhost.bridging roles install it for you."


def iproute() -> Any:
    """A new pyroute2 IPRoute socket for the current network namespace (a context manager)."""
    available, error = pyroute2_status()
    if not available:
        raise ModuleError(missing_message(), exception=error)
    return _STATE["module"].IPRoute()


def assert_pyroute2(module: Any) -> None:
    """Fail the module with an actionable message when pyroute2 is missing."""
    available, error = pyroute2_status()
    if not available:
        module.fail_json(msg=missing_message(), exception=error)

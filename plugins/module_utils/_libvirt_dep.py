# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional libvirt-python dependency, imported once, with a clear error if missing.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

Without libvirt-python, ``libvirt`` is None, ``LibvirtError`` is a placeholder
exception and the constants below keep their libvirt values, so that code that
only plans (and its unit tests) works on machines without libvirt.
"""

from __future__ import annotations

import traceback
from typing import Any

from ansible.module_utils.basic import missing_required_lib

# The public names; ``libvirt`` is re-exported (the libvirt-python module, or None without it).
__all__ = [
    "HAS_LIBVIRT",
    "LIBVIRT_IMPORT_ERROR",
    "VIR_DOMAIN_AFFECT_CONFIG",
    "VIR_DOMAIN_AFFECT_LIVE",
    "VIR_DOMAIN_XML_INACTIVE",
    "VIR_DOMAIN_XML_SECURE",
    "VIR_ERR_NO_DOMAIN",
    "VIR_ERR_NO_INTERFACE",
    "VIR_ERR_NO_NETWORK",
    "VIR_ERR_NO_SUPPORT",
    "LibvirtError",
    "assert_libvirt",
    "libvirt",
    "silence_libvirt_stderr",
]

try:
    import libvirt
except ImportError:
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR: str | None = traceback.format_exc()
    libvirt = None

    class _NoLibvirtError(Exception):
        """Placeholder so that except clauses still work without libvirt-python."""

        def get_error_code(self) -> int:
            return 0

    # Typed as the placeholder, which has the one method callers use besides str():
    # libvirt-python has no type stubs, and libvirt.libvirtError has get_error_code() too.
    LibvirtError: type[_NoLibvirtError] = _NoLibvirtError
else:
    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None
    LibvirtError = libvirt.libvirtError


def _const(name: str, value: int) -> int:
    """A libvirt constant, or its documented value when libvirt-python is missing."""
    constant: int = getattr(libvirt, name, value) if libvirt is not None else value
    return constant


# virDomainXMLFlags, virDomainModificationImpact and virErrorNumber values
# (stable parts of libvirt's ABI).
VIR_DOMAIN_XML_SECURE = _const("VIR_DOMAIN_XML_SECURE", 1)
VIR_DOMAIN_XML_INACTIVE = _const("VIR_DOMAIN_XML_INACTIVE", 2)
VIR_DOMAIN_AFFECT_LIVE = _const("VIR_DOMAIN_AFFECT_LIVE", 1)
VIR_DOMAIN_AFFECT_CONFIG = _const("VIR_DOMAIN_AFFECT_CONFIG", 2)
VIR_ERR_NO_SUPPORT = _const("VIR_ERR_NO_SUPPORT", 3)
VIR_ERR_NO_DOMAIN = _const("VIR_ERR_NO_DOMAIN", 42)
VIR_ERR_NO_NETWORK = _const("VIR_ERR_NO_NETWORK", 43)
VIR_ERR_NO_INTERFACE = _const("VIR_ERR_NO_INTERFACE", 57)


def silence_libvirt_stderr() -> None:
    """Stop libvirt from printing every error on stderr; the exceptions carry them."""
    if libvirt is not None:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def assert_libvirt(module: Any) -> None:
    """Fail the module with an actionable message when libvirt-python is missing."""
    if not HAS_LIBVIRT:
        module.fail_json(
            msg=missing_required_lib(
                "libvirt-python",
                reason="to manage libvirt domains",
                url="https://pypi.org/project/libvirt-python/",
            )
            + ". On RHEL-family hosts and on Debian, install python3-libvirt (or libvirt-python with pip).",
            exception=LIBVIRT_IMPORT_ERROR,
        )

# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain errors that modules turn into one actionable fail_json.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ModuleError(Exception):
    """An error the user can act on.

    ``msg`` says what is wrong and what to do; ``result`` holds extra keys
    for the failed result (for example what was restored).
    """

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


def fail_on_error(module: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``func`` and return its result; turn a ModuleError into fail_json."""
    try:
        return func(*args, **kwargs)
    except ModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    return None  # not reached: fail_json exits


def run_and_exit(module: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run a module's work and exit with its result.

    A ModuleError becomes one fail_json; the result's ``warnings`` become
    Ansible warnings; the ``diff`` is returned only in diff mode.
    """
    result = fail_on_error(module, func, *args, **kwargs)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)

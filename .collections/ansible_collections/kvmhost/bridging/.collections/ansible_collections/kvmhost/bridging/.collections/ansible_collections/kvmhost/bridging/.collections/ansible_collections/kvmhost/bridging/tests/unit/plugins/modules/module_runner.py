"""Run a module's main() in process with given arguments and return its JSON result."""

from __future__ import annotations

import io
import json
import sys

import pytest
from ansible.module_utils.testing import patch_module_args


def run_main(module, args, check=False, diff=False):
    args = dict(args)
    if check:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    out = io.StringIO()
    old_stdout = sys.stdout
    sys.stdout = out
    try:
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
    finally:
        sys.stdout = old_stdout
    return json.loads(out.getvalue())

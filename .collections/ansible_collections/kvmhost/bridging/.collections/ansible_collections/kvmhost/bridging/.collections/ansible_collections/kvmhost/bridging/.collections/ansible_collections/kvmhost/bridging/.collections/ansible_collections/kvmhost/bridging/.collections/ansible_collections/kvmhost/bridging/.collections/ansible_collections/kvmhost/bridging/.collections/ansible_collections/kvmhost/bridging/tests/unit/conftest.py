"""Make the working tree importable as ansible_collections.kvmhost.bridging.

The link lives in .build/ (ignored by git) so unit tests always exercise the
working tree, never an installed copy.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(ROOT, ".build", "unit")
LINK = os.path.join(BASE, "ansible_collections", "kvmhost", "bridging")

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)
if BASE not in sys.path:
    sys.path.insert(0, BASE)

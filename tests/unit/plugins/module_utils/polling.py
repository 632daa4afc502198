"""Waiting for an event in unit tests that run real processes: a bounded poll, never a measurement."""

from __future__ import annotations

import time


def until(predicate, limit=60.0):
    """Poll ``predicate`` until it holds and return its value; fail after ``limit`` seconds (a bound for a hung test)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("gave up waiting for %s" % predicate)

"""The SIP suite's helpers (tests/sip/conftest.py: RtpPeer, run_sipp, ...) for tests in other
folders, loaded once by path as a module of its own (`import conftest` would find
tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

_NAME = "vctest_sip_suite_conftest"


def helpers() -> ModuleType:
    """tests/sip/conftest.py as a module (registered in sys.modules first: its dataclasses
    look their module up there)."""
    if _NAME not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "sip" / "conftest.py"
        spec = importlib.util.spec_from_file_location(_NAME, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


def wait_for(predicate, timeout: float, what: str):
    """Polls `predicate` every 50 ms until it returns something true, which it returns;
    fails the test after `timeout` seconds."""
    import pytest

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)

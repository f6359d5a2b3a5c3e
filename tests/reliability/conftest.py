"""Fixtures of the reliability suite: llmotel telemetry toggled per run, and the canned-bytes server."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from _canned import CannedServer
from _rel import Tel


@pytest.fixture
def tel() -> Iterator[Tel]:
    t = Tel()
    try:
        yield t
    finally:
        if t.on:
            t.uninstrument()
        t.tp.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap() -> None:
    """Move everything alive now out of the collector's view: the suite calls gc.collect() after every run
    (to finish abandoned streams) and a full collection of this process's heap costs ~0.25 s otherwise."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="module")
def canned() -> Iterator[CannedServer]:
    with CannedServer() as server:
        yield server


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """``LLMOTEL_FUZZ_REPORT=path``: write how many inputs each property test tried (``make fuzz``)."""
    import json
    import os

    path = os.environ.get("LLMOTEL_FUZZ_REPORT")
    if not path:
        return
    from _fuzz import TRIED

    with open(path, "w") as f:
        json.dump({"tried": dict(TRIED), "exitstatus": int(exitstatus)}, f)

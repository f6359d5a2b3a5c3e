"""A worker forked while another thread held one of the SDK's locks gets it free (llmotel/forksafe.py)."""

from __future__ import annotations

import os
import sys

import pytest

from llmotel.phases.learner import Calibrator
from llmotel.phases.model import PhaseModel

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _in_child(check: object) -> int:
    """Fork; the child exits 0 when ``check()`` is true within a second; returns the child's exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            code = 0 if check() else 1  # type: ignore[operator]
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_lock_held_at_fork_is_free_in_the_child() -> None:
    model = PhaseModel(Calibrator())
    held = [model.calibrator._lock, model.passes._lock, model.slots._lock, model.residuals._lock]
    for lock in held:
        lock.acquire()  # as if another thread were inside them when the worker was forked
    try:
        code = _in_child(lambda: all(
            owner._lock.acquire(timeout=1.0)
            for owner in (model.calibrator, model.passes, model.slots, model.residuals)
        ))
    finally:
        for lock in held:
            lock.release()
    assert code == 0


def test_a_module_lock_held_at_fork_is_free_in_the_child() -> None:
    from llmotel.energy import estimator

    estimator._state_lock.acquire()
    try:
        code = _in_child(lambda: sys.modules["llmotel.energy.estimator"]._state_lock.acquire(timeout=1.0))
    finally:
        estimator._state_lock.release()
    assert code == 0

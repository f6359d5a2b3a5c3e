"""Locks that a forked child gets afresh.

A worker forked (gunicorn, multiprocessing with ``fork``) while another thread held one of the SDK's locks would
inherit it held, with no thread left to release it: the child's first LLM call would hang on it. Each lock is
made with ``lock(owner, attribute)``, which keeps a weak reference to its owner; after a fork the child sets a new
lock on every live owner. The locks stay plain ``threading.Lock`` objects: no cost on the paths that take them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Any

_owners: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def lock(owner: Any, attribute: str = "_lock") -> threading.Lock:
    """A new lock for ``owner.<attribute>`` (set it there), renewed in a forked child. ``owner`` may be a module."""
    with _guard:
        names = _owners.setdefault(owner, [])
        if attribute not in names:
            names.append(attribute)
    return threading.Lock()


def _renew_in_child() -> None:
    global _guard
    _guard = threading.Lock()
    for owner, names in list(_owners.items()):
        for name in names:
            with contextlib.suppress(Exception):  # an owner refusing the attribute keeps its lock: nothing better
                setattr(owner, name, threading.Lock())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_in_child)

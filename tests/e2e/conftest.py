"""Fixtures of tests/e2e (defined in e2e_support, which the test modules also import helpers from)."""

from e2e_support import e2e_stack

__all__ = ["e2e_stack"]

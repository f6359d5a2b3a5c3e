"""tests/fairness reuses the e2e harness (examples/e2e/stack.py, tests/e2e/e2e_support.py): fairness_support puts
both on sys.path before the test modules import them."""

import fairness_support

__all__ = ["fairness_support"]

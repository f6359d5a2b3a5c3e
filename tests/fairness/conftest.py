"""tests/fairness reuses the e2e harness (examples/e2e/stack.py, tests/e2e/e2e_support.py): fairness_support puts
both on sys.path before the test modules import them.

The simulator scenarios run only when asked for (`make test-fairness`, or LLMOTEL_FAIRNESS=1), alone: whether a
burster is named depends on the spans of a few busy slots arriving on time, and next to other suites' collectors,
Prometheus servers and simulators on a 2-core machine (pytest -n 2) a slot could come late (CI, 2026-12-06: the
calm pool saw a wait in one run, the bully went unnamed in the next). test_demo_alerts.py is cheap and always runs.
"""

import os

import fairness_support

__all__ = ["fairness_support"]

collect_ignore_glob = [] if os.environ.get("LLMOTEL_FAIRNESS") == "1" else ["test_fairness_*.py"]

"""tests/tier runs only when asked for (`make test-tier`, or LLMOTEL_TIER=1): each case starts six processes and
runs ~40 s of load, so `make pytest` / `make unit` leave the directory out instead of running it twice."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("LLMOTEL_TIER") == "1" else ["test_*.py"]

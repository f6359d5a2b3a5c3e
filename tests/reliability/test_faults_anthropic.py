"""The fault suite's anthropic cases (``_cases.CASES``): identical user-visible behaviour with and without llmotel."""

from __future__ import annotations

import pytest
from _canned import CannedServer
from _cases import CASES
from _rel import Case, Tel, check

MINE = [c for c in CASES if c.name.startswith("anthropic_")]


@pytest.mark.parametrize("case", MINE, ids=[c.name for c in MINE])
def test_fault(case: Case, tel: Tel, canned: CannedServer) -> None:
    check(case, tel, canned.base_url)

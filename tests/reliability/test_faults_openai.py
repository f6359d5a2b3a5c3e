"""The fault suite's openai cases (``_cases.CASES``): identical user-visible behaviour with and without llmotel."""

from __future__ import annotations

import pytest
from _canned import CannedServer
from _cases import CASES
from _rel import Case, Tel, check

MINE = [c for c in CASES if c.name.startswith("openai_")]


@pytest.mark.parametrize("case", MINE, ids=[c.name for c in MINE])
def test_fault(case: Case, tel: Tel, canned: CannedServer) -> None:
    check(case, tel, canned.base_url)


def test_every_case_is_run_and_there_are_enough() -> None:
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names) >= 40
    assert all(n.startswith(("openai_", "anthropic_")) for n in names)

"""Runs last: nothing the suite made is still there (conftest checks again after teardown)."""

from __future__ import annotations

import pytest
from leftovers import state

from pytest_pktgen.host.netns import NETNS_DIR

pytestmark = pytest.mark.integration


def test_nothing_left_behind(request, pktgen_module):
    before = request.config._pktgen_state_before
    now = state()
    assert now["netns"] == [] == before["netns"]
    assert now["our_links"] == []
    assert now["irq_masks"] == before["irq_masks"]
    assert {n for n in now["links"]} == {n for n in before["links"]}
    assert not any(p.name.startswith("pg") for p in NETNS_DIR.glob("*"))
    from pytest_pktgen.pktgen.proc import Pktgen

    assert Pktgen().devices() == []

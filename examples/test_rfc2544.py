"""RFC 2544 throughput over frame sizes on the forwarding lab: pktgen -> router namespace ->
sink, and for each frame size the highest rate the router forwards with no loss (NDR) and with
at most 0.5 % (PDR), found by MLRsearch. The session's table is RFC 2544's throughput table;
searches.csv, results.json and a plot per search are in --pktgen-out.
"""

from __future__ import annotations

import pytest


@pytest.mark.pktgen_sweep(frame=[64, 512, 1500])
@pytest.mark.pktgen_search(loss_ratios=[0.0, 0.005])
def test_rfc2544_throughput(forwarding, pktgen_search):
    found = pktgen_search(forwarding)
    # a device either loses frames above some load (bounds on both sides), or forwards all
    # the generator can send (irregular: no upper bound, the NDR is the max load)
    assert found.ndr_pps is not None and found.ndr_pps <= found.max_load
    assert found.pdr_pps >= found.ndr_pps
    assert all(t.intended_load <= found.max_load for t in found.trials)

"""The paper's Table 1: pps for frames of 64-1500 bytes, clone_skb off and on, over a crossover.

`make sweep` (or `pytest --pktgen-vm examples/test_size_sweep.py`) runs it in the VM lab; on a
lab host `sudo pytest --pktgen-dev eth1 --pktgen-rx-dev eth2 examples/test_size_sweep.py` runs it
over a real cable. Frame sizes come from --pktgen-sizes (bytes on the wire with the FCS;
pktgen's pkt_size is 4 less). The table, results.csv/json and sweep.png land in --pktgen-out.
"""

from __future__ import annotations

import pytest


@pytest.mark.pktgen_sweep(clone_skb=[0, 100])
def test_size_sweep(pktgen_dut, pktgen_bench, pktgen_settings):
    """clone_skb 100 sends each skb 100 times: the paper's 'clone' rows, TX without allocation."""
    measured = pktgen_bench(pktgen_dut)
    assert measured.sent == pktgen_settings.count * pktgen_settings.rounds
    assert measured.row.errors == 0
    # every frame sent crossed the cable and was counted by the receiving NIC, or was lost there:
    # the loss is in the table, and --pktgen-max-loss turns it into a gate
    assert 0 < measured.received <= measured.sent

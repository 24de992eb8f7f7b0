"""The paper's packet-size sweep (Table 1) over a crossover pair: pps for frames of 64-1500 B.

Run it in the VM lab with `make sweep` (or `pytest --pktgen-vm examples/`).
"""

from __future__ import annotations

import pytest

from pytest_pktgen import DeviceConfig, run
from pytest_pktgen.netdev import link_stats
from pytest_pktgen.params import FCS_LEN

FRAME_SIZES = [64, 128, 256, 512, 1024, 1280, 1500]
COUNT = 50_000


@pytest.mark.parametrize("frame", FRAME_SIZES, ids=[f"{s}B" for s in FRAME_SIZES])
def test_size_sweep(pktgen, lab_nic_pairs, frame, record_point):
    pair = lab_nic_pairs[0]
    rx_before = link_stats(pair.rx)
    config = DeviceConfig(pair.tx, {"count": COUNT, "pkt_size": frame - FCS_LEN,
                                    "dst": "198.18.0.2", "dst_mac": pair.rx_mac})
    result = run(config, pktgen=pktgen).devices[pair.tx].result
    received = (link_stats(pair.rx) - rx_before).rx_packets
    record_point({"frame": frame, "pkt_size": result.pkt_size, "sent": result.sofar,
                  "received": received, "pps": result.pps, "Mb/s": result.mbps,
                  "errors": result.errors})
    assert result.sofar == COUNT
    assert received == COUNT

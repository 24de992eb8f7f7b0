"""Assertions that hold by construction, whatever the load on the machine running the VM lab.

- Every frame pktgen offers is either accepted by the driver (``pkts-sofar``) or refused by it
  (pktgen's ``errors``: a veth answers NET_XMIT_DROP when its peer's backlog is full and counts
  the frame in its own ``tx_dropped``); pktgen then sends another frame in its place, so a run
  still reaches its count. So ``errors`` equals the link's ``tx_dropped``, never "0 at full rate".
- What was accepted arrives once nothing is in flight any more
  (:func:`pytest_pktgen.lab.rx.settle`).
  The virtio cable's QEMU queue holds 10,000 frames the receiving guest has not taken yet and
  drops beyond that: runs that must arrive exactly send at most 10,000 frames per receiving NIC.
- A run paced by ``ratep`` sends its n-th packet no earlier than ``(n - 1) / ratep`` seconds
  after its start (pktgen's next_tx only ever advances by the delay), so its pps can never exceed
  ``ratep * n / (n - 1)``, give or take CLOCK_MONOTONIC under TCG (seen: 0.05 % over; PACE_SLACK
  allows 0.5 %); how far below it falls depends on the load, and is not asserted.
- pktgen stamps ``started``/``stopped`` with CLOCK_MONOTONIC in microseconds, the clock of
  ``time.monotonic_ns()``: a stop that ends every device lies between those stamps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pytest_pktgen.lab.rx import settle

CABLE_QUEUE = 10_000  # QEMU's NetQueue nq_maxlen: frames a hub port holds for a busy receiver
PACE_SLACK = 1.005  # the guest's clock under TCG: a paced run measured 0.05 % above its rate


def sent_checked(result, tx, tx_before) -> int:
    """pktgen's pkts-sofar on endpoint ``tx``, after checking that its errors are exactly the
    frames the link refused since ``tx_before`` (its stats then)."""
    status = result.devices[tx.ifname]
    refused = (tx.stats() - tx_before).tx_dropped
    assert status.result.errors == refused, (
        f"pktgen counted {status.result.errors} errors on {tx.ifname}, which dropped {refused}")
    return status.result.sofar


def arrived(endpoint, before, sent: int, counter: str = "rx_packets") -> int:
    """``counter`` of ``endpoint`` since ``before``, read once nothing more is in flight."""
    return settle(lambda: getattr(endpoint.stats() - before, counter), sent)


def paced_within_rate(result, ratep: int) -> None:
    """Every device paced at ``ratep`` sent something and never faster than its rate allows."""
    for name, status in result.devices.items():
        sofar, pps = status.result.sofar, status.result.pps
        assert sofar >= 2, f"{name} sent {sofar}"
        assert pps <= ratep * sofar / (sofar - 1) * PACE_SLACK, f"{name}: {pps} pps at {ratep}"


def stamps_us(status) -> tuple[int, int]:
    """pktgen's started and stopped stamps of a device (CLOCK_MONOTONIC, microseconds)."""
    return (int(status.current["started"].removesuffix("us")),
            int(status.current["stopped"].removesuffix("us")))


def stopped_by_the_stop(result) -> None:
    """Every device ran when ``stop`` was written and stopped after it: one stop for all."""
    assert result.stopped_by_us and result.stop_written_us is not None
    for name, status in result.devices.items():
        started, stopped = stamps_us(status)
        assert started < result.stop_written_us <= stopped <= result.stop_returned_us, (
            name, started, result.stop_written_us, stopped, result.stop_returned_us)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll ``predicate`` until true; a failure after ``timeout`` (a hang, not a timing)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.05)

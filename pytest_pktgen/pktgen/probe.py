"""What this kernel's pktgen accepts, asked of the module itself in a throw-away namespace.

:func:`features` starts a thread that leaves for a new, unnamed network namespace (pktgen gives
it its own threads), adds ``lo@probe`` there, tries the commands whose answers differ between
kernels and ends; the namespace, its pktgen threads and the device vanish with the thread.
Nothing in the caller's namespace is touched, and no Python process is started (one costs
seconds under TCG). ``python -m pytest_pktgen.pktgen.probe`` prints the answers as JSON.
"""

from __future__ import annotations

import ctypes
import json
import time
from pathlib import Path

from ..errors import PktgenWriteError
from ..host import netlink
from ..host.netns import on_thread
from .proc import Pktgen, write_command

CLONE_NEWNET = 0x40000000
# /proc/net follows the process's (the main thread's) namespace; this follows the caller's
OWN_PKTGEN = Path("/proc/thread-self/net/pktgen")


def _probe_here() -> dict:
    """Probe on the calling thread, which it moves into a new network namespace for good."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
    with netlink.IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    pg = Pktgen(OWN_PKTGEN)
    deadline = time.monotonic() + 5
    while not pg.available:
        if time.monotonic() > deadline:
            raise RuntimeError("pktgen did not appear in a new network namespace")
        time.sleep(0.02)
    device = "lo@probe"
    pg.add_device(0, device)
    path = pg.device_path(device)

    found = {
        "shared_flag": pg.accepts(device, "flag SHARED"),
        "ipsec": pg.accepts(device, "flag IPSEC"),
        "name_equals_value": pg.accepts(device, "count=7"),
    }
    try:
        write_command(path, "clone_skb 1")  # lo never has shared-skb support
        found["not_supported_errno"] = 0
    except PktgenWriteError as err:
        found["not_supported_errno"] = err.errno
    return found


def features(timeout: float = 60) -> dict:
    """pktgen's answers as a dict of :class:`~pytest_pktgen.pktgen.module.Features` fields."""
    return on_thread(_probe_here, "pktgen-probe", timeout)  # TimeoutError past ``timeout``


if __name__ == "__main__":
    print(json.dumps(features()))

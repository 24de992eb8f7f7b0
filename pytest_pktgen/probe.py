"""What this kernel's pktgen accepts, asked of the module itself in a throw-away namespace.

Run as ``python -m pytest_pktgen.probe``: the process moves into a new, unnamed network
namespace (pktgen gives it its own threads), adds ``lo@probe``, tries the commands whose answers
differ between kernels, prints them as JSON and exits; the namespace, its pktgen threads and the
device vanish with it. Nothing in the caller's namespace is touched.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

CLONE_NEWNET = 0x40000000


def probe() -> dict:
    from .errors import PktgenWriteError
    from .netlink import IPRoute
    from .proc import Pktgen, write_command

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    pg = Pktgen()
    deadline = time.monotonic() + 5
    while not pg.available:
        if time.monotonic() > deadline:
            raise RuntimeError("pktgen did not appear in a new network namespace")
        time.sleep(0.02)
    device = "lo@probe"
    pg.add_device(0, device)
    path = pg.device_path(device)

    features = {
        "shared_flag": pg.accepts(device, "flag SHARED"),
        "ipsec": pg.accepts(device, "flag IPSEC"),
        "name_equals_value": pg.accepts(device, "count=7"),
    }
    try:
        write_command(path, "clone_skb 1")  # lo never has shared-skb support
        features["not_supported_errno"] = 0
    except PktgenWriteError as err:
        features["not_supported_errno"] = err.errno
    return features


if __name__ == "__main__":
    try:
        print(json.dumps(probe()))
    except Exception as err:  # noqa: BLE001 - reported to the parent as text
        print(f"probe failed: {err}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.flush()
    os._exit(0)

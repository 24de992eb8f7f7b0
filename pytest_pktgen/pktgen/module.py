"""Loading the pktgen module (and unloading only what we loaded), and what the kernel offers."""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PktgenNotAvailable
from . import probe
from .proc import PROC_DIR, Pktgen

PROBE_TIMEOUT_S = 60  # a second or two under TCG; the rest is for a loaded host
FEATURES_DIR = Path("/run/pytest-pktgen")  # tmpfs: gone with the boot it describes


@dataclass(frozen=True)
class Features:
    """What this kernel's pktgen accepts (probed, never guessed from the version)."""

    shared_flag: bool  # flag SHARED exists (about 6.7 on)
    ipsec: bool  # flag IPSEC and spi (CONFIG_XFRM)
    name_equals_value: bool  # "count=7" parsed (mainline, about 6.15 on)
    not_supported_errno: int  # 524 (ENOTSUPP) on 6.1/6.12, 95 (EOPNOTSUPP) on mainline

    @property
    def errno_flavour(self) -> str:
        return {524: "ENOTSUPP (524)", 95: "EOPNOTSUPP (95)"}.get(
            self.not_supported_errno, str(self.not_supported_errno))

    def describe(self) -> str:
        return (f"SHARED flag {'yes' if self.shared_flag else 'no'}, IPSEC "
                f"{'yes' if self.ipsec else 'no'}, name=value "
                f"{'yes' if self.name_equals_value else 'no'}, refusals {self.errno_flavour}")


@dataclass(frozen=True)
class KernelInfo:
    """What this kernel's pktgen is: its version, the kernel it runs in, what it accepts."""

    pktgen_version: str
    kernel_release: str
    loaded_by_us: bool
    features: Features

    @property
    def kernel_version(self) -> tuple[int, int]:
        major, minor = self.kernel_release.split(".")[:2]
        return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def load(timeout: float = 10.0) -> bool:
    """Make /proc/net/pktgen exist. Return True if this call loaded the module."""
    if PROC_DIR.exists():
        return False
    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    if not os.path.exists("/proc/modules"):
        raise PktgenNotAvailable(
            f"this kernel ({platform.release()}) has no pktgen and no module support: "
            "run the tests in the VM lab with `pytest --pktgen-vm`")
    proc = subprocess.run([modprobe, "pktgen"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PktgenNotAvailable(
            f"`modprobe pktgen` failed on {platform.release()}: {proc.stderr.strip()} "
            "(Debian: apt-get install linux-image-amd64 and boot it, or use `pytest --pktgen-vm`)")
    deadline = time.monotonic() + timeout
    while not PROC_DIR.exists():
        if time.monotonic() > deadline:
            raise PktgenNotAvailable(f"modprobe pktgen succeeded but {PROC_DIR} did not appear")
        time.sleep(0.05)
    return True


def unload() -> None:
    """Unload pktgen; call only when :func:`load` returned True."""
    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    proc = subprocess.run([modprobe, "-r", "pktgen"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`modprobe -r pktgen` failed: {proc.stderr.strip()}")


def kernel_info(loaded_by_us: bool = False) -> KernelInfo:
    return KernelInfo(Pktgen().version(), platform.release(), loaded_by_us, features())


@functools.cache
def features() -> Features:
    """Probe pktgen in a throw-away network namespace (the module must be loaded; see
    :mod:`pytest_pktgen.pktgen.probe`): once per boot and module build, the answer kept in /run for
    the sessions after this one."""
    cache = _features_cache()
    try:
        return Features(**json.loads(cache.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    try:
        found = Features(**probe.features(PROBE_TIMEOUT_S))
    except Exception as err:  # noqa: BLE001 - any failure: no pktgen to trust
        raise PktgenNotAvailable(f"probing pktgen's features failed: {err}") from err
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}")
        partial.write_text(json.dumps(asdict(found)))
        partial.replace(cache)  # whole or not at all, for sessions reading it meanwhile
    except OSError:
        pass  # a read-only /run: probe again next time
    return found


def _features_cache() -> Path:
    """Where this boot's answer for this kernel and this pktgen build is kept."""
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    try:
        build = Path("/sys/module/pktgen/srcversion").read_text().strip()
    except OSError:
        build = "builtin"
    return FEATURES_DIR / f"features-{platform.release()}-{boot}-{build}.json"


def module_path(release: str) -> Path | None:
    """pktgen.ko of an installed kernel release, in any of the compressions Debian uses."""
    base = Path("/lib/modules") / release / "kernel/net/core"
    for suffix in ("", ".xz", ".zst", ".gz"):
        path = base / f"pktgen.ko{suffix}"
        if path.exists():
            return path
    return None

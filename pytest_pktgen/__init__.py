"""pytest-pktgen: the Linux in-kernel packet generator as pytest fixtures and gated benchmarks."""

from .errors import (
    DeviceUnsupported,
    PktgenConfigError,
    PktgenError,
    PktgenNotAvailable,
    PktgenResultError,
    PktgenRunError,
    PktgenWriteError,
    VmLabError,
)
from .pktgen.params import DeviceConfig
from .pktgen.parse import (
    DeviceStatus,
    Result,
    ThreadStatus,
    parse_device,
    parse_pgctrl,
    parse_thread,
)
from .pktgen.proc import Pktgen
from .run.runner import PktgenRun, RunResult, run

__all__ = [
    "DeviceConfig", "DeviceStatus", "DeviceUnsupported", "Pktgen", "PktgenConfigError",
    "PktgenError",
    "PktgenNotAvailable", "PktgenResultError", "PktgenRun", "PktgenRunError", "PktgenWriteError",
    "Result", "RunResult", "ThreadStatus", "VmLabError", "parse_device", "parse_pgctrl",
    "parse_thread", "run",
]

"""The /proc/net/pktgen wire protocol: one command per os.write, checked twice.

Each command is one ``os.write`` on a raw fd, newline-terminated (6.1 drops the last byte of a
pgctrl write and reads past the end of device writes), its length checked (6.1 answers
``rate 0`` with a short count), its errno turned into a :class:`PktgenWriteError` that carries
the kernel's ``Result:`` text, and then the file's ``Result:`` re-read and required to start
with ``OK:``, because typos in flags and xmit modes are answered with a successful write.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .. import host
from ..errors import PktgenResultError, PktgenWriteError
from ..host.netns import Resident
from .params import RESULT_UNCHANGED, DeviceConfig, check_device_name
from .parse import DeviceStatus, ThreadStatus, parse_device, parse_pgctrl, parse_thread, result_line

PROC_DIR = Path("/proc/net/pktgen")
MAX_COMMAND = 1023  # longest legitimate command: 20 imix pairs or 16 MPLS labels, well below
MAX_PGCTRL = 127  # mainline truncates pgctrl commands of 127 bytes or more
REMOVAL_TIMEOUT_S = 5.0  # rem_device_all/reset remove devices asynchronously


def write_command(path: Path | str, command: str, *, check: bool = True,
                  max_len: int = MAX_COMMAND) -> str:
    """Write one command; return the file's Result text after it ("" when not checked)."""
    path = str(path)
    if "\n" in command or "\0" in command:
        raise ValueError(f"a pktgen command is one line: {command!r}")
    data = (command + "\n").encode("ascii")
    if len(data) > max_len:
        raise ValueError(f"pktgen command of {len(data)} bytes is longer than {max_len}: "
                         f"{command[:60]!r}...")
    fd = os.open(path, os.O_WRONLY)
    try:
        written = os.write(fd, data)
    except OSError as err:
        raise PktgenWriteError(path, command, err.errno, _read_result(path)) from None
    finally:
        os.close(fd)
    if written != len(data):
        raise PktgenWriteError(path, command, 0, f"short write: {written} of {len(data)} bytes "
                               f"taken; {_read_result(path)}")
    if not check:
        return ""
    result = _read_result(path)
    if not result.startswith("OK:"):
        raise PktgenResultError(path, command, result)
    return result


def _read_result(path: str) -> str:
    try:
        return result_line(Path(path).read_text())
    except OSError:
        return ""


class Pktgen:
    """pktgen in one network namespace: its pgctrl, its threads and its devices.

    ``netns`` names another namespace than this process's: its files are then read through a
    thread parked in it, and pgctrl is written from a thread inside it (pgctrl acts on the
    writer's namespace, whichever file it opened). Call :meth:`close` when done with it.
    """

    def __init__(self, proc_dir: Path | str = PROC_DIR, netns: str | None = None):
        self.netns = netns
        self._resident = None
        if netns is not None:
            self._resident = Resident(netns)
            proc_dir = self._resident.proc_net / "pktgen"
        self.dir = Path(proc_dir)

    def close(self) -> None:
        if self._resident is not None:
            self._resident.close()
            self._resident = None

    def __enter__(self) -> Pktgen:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return (self.dir / "pgctrl").exists()

    def version(self) -> str:
        return parse_pgctrl((self.dir / "pgctrl").read_text())

    def threads(self) -> list[int]:
        return sorted(int(p.name.removeprefix("kpktgend_")) for p in self.dir.glob("kpktgend_*"))

    def thread_status(self, thread: int) -> ThreadStatus:
        return parse_thread(self.thread_path(thread).read_text())

    def devices(self) -> list[str]:
        """pktgen devices that have a file now (``eth1``, ``eth1@0`` ...)."""
        return sorted(p.name for p in self.dir.iterdir()
                      if p.name != "pgctrl" and not p.name.startswith("kpktgend_"))

    def devices_here(self) -> bool:
        """Whether pktgen is loaded and has any device in this namespace (a cheap look)."""
        return self.available and bool(self.devices())

    def device_status(self, device: str) -> DeviceStatus:
        return parse_device(self.device_path(device).read_text())

    def thread_path(self, thread: int) -> Path:
        return self.dir / f"kpktgend_{thread}"

    def device_path(self, device: str) -> Path:
        return self.dir / check_device_name(device)

    # --- writing -----------------------------------------------------------------------
    def pgctrl(self, command: str) -> None:
        """start (blocks until every device is done), stop (returns at once) or reset."""
        if command not in ("start", "stop", "reset"):
            raise ValueError(f"pgctrl takes start, stop or reset, not {command!r}")
        args = (self.dir / "pgctrl", command)
        kwargs = {"check": False, "max_len": MAX_PGCTRL}
        host.on(self.netns).call(lambda: write_command(*args, **kwargs))

    def thread_command(self, thread: int, command: str) -> str:
        return write_command(self.thread_path(thread), command)

    def add_device(self, thread: int, device: str) -> None:
        check_device_name(device)
        if thread not in self.threads():
            raise ValueError(f"there is no pktgen thread {thread}: threads are {self.threads()}")
        self.thread_command(thread, f"add_device {device}")

    def rem_device_all(self, thread: int) -> None:
        self.thread_command(thread, "rem_device_all")

    def max_before_softirq(self, thread: int, value: int = 10000) -> str:
        """The paper's thread command; today's kernels accept it and only say it is obsolete."""
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"max_before_softirq takes a whole number, not {value!r}")
        return self.thread_command(thread, f"max_before_softirq {value}")

    def clear_counters(self, device: str) -> str:
        """Reset a device's seq_num, pkts-sofar, errors and idle time."""
        return self.device_command(device, "clear_counters")

    def device_command(self, device: str, command: str) -> str:
        name = command.split(" ", 1)[0]
        return write_command(self.device_path(device), command, check=name not in RESULT_UNCHANGED)

    def accepts(self, device: str, command: str) -> bool:
        """Write a command and say whether pktgen took it (errno and Result both checked).
        For probing what a kernel or a link can do, on a device made for that."""
        try:
            self.device_command(device, command)
            return True
        except (PktgenWriteError, PktgenResultError):
            return False

    def configure(self, config: DeviceConfig) -> None:
        """Write every command of a validated config to its device file."""
        for command in config.commands():
            self.device_command(config.device, command)

    def reset(self, timeout: float = REMOVAL_TIMEOUT_S) -> None:
        """Stop everything and remove every device in this namespace; wait for the removal."""
        self.pgctrl("reset")
        self.wait_removed(self.devices(), timeout)

    def remove_thread_devices(self, threads: list[int], timeout: float = REMOVAL_TIMEOUT_S) -> None:
        """rem_device_all on the given threads, then wait until their device files are gone."""
        names = [d for t in threads for d in self.thread_status(t).devices]
        for thread in threads:
            self.rem_device_all(thread)
        self.wait_removed(names, timeout)

    def wait_removed(self, devices: list[str], timeout: float = REMOVAL_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while any((self.dir / d).exists() for d in devices):
            if time.monotonic() > deadline:
                left = [d for d in devices if (self.dir / d).exists()]
                raise TimeoutError(f"pktgen devices {left} still exist {timeout}s after removal")
            time.sleep(0.02)

"""Command-line options with ini keys: one help string each, precedence CLI > ini > default.

A bad value is a ``pytest.UsageError`` that names the option or ini key it came from.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest


def positive_int(text: str) -> int:
    if not re.fullmatch(r"\d+", str(text).strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def count(text: str) -> int:
    if not re.fullmatch(r"\d+", str(text).strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def memory(text: str) -> str:
    if not re.fullmatch(r"\d+[MG]", str(text).strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size such as 2G or 1536M")
    return str(text).strip()


def choice(*choices: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return check


def boolean(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


@dataclass(frozen=True)
class Option:
    name: str  # ini key and dest; the flag is --name with '-' for '_'
    help: str
    default: object
    type: Callable[[str], object] | None = None  # None: a flag (store_true)
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS = (
    Option("pktgen_vm", "run this pytest session inside the VM lab: a virtme-ng guest booting a "
           "kernel with pktgen", False),
    Option("pktgen_vm_kernel", "kernel for the VM lab: a bzImage/vmlinuz or a built kernel tree",
           None, str, "PATH"),
    Option("pktgen_vm_cpus", "vCPUs of the VM lab", 2, positive_int, "N"),
    Option("pktgen_vm_memory", "memory of the VM lab", "2G", memory, "SIZE"),
    Option("pktgen_vm_nics", "crossover pairs of virtio-net NICs in the VM lab, each pair on a "
           "QEMU hub of its own", 2, count, "N"),
    Option("pktgen_vm_kvm", "use KVM: auto tries it and falls back to TCG", "auto",
           choice("auto", "on", "off"), "auto|on|off"),
    Option("pktgen_vm_timeout", "seconds the whole guest run may take; 0 means no limit", 0.0,
           seconds, "SECONDS"),
    Option("pktgen_dev", "the NIC pktgen sends on (device under test) on a real host", None, str,
           "IFNAME"),
    Option("pktgen_rx_dev", "the NIC that receives pktgen's frames over a cable (crossover)",
           None, str, "IFNAME"),
    Option("pktgen_out", "directory for results and reports (writable from the VM lab too)",
           None, str, "DIR"),
)
BY_NAME = {o.name: o for o in OPTIONS}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("pktgen", "pktgen benchmarks (pytest-pktgen)")
    for opt in OPTIONS:
        text = f"{opt.help} (ini: {opt.name}; default: {opt.default})"
        if opt.type is None:
            group.addoption(opt.flag, dest=opt.name, action="store_true", default=None, help=text)
        else:
            group.addoption(opt.flag, dest=opt.name, type=opt.type, default=None,
                            metavar=opt.metavar, help=text)
        parser.addini(opt.name, text, default=None)


def get(config: pytest.Config, name: str):
    """The option's value: command line, then ini file, then default."""
    opt = BY_NAME[name]
    value = config.getoption(name, None)
    if value is not None:
        return value
    raw = config.getini(name)
    if raw in (None, "", []):
        return opt.default
    convert = opt.type or boolean
    try:
        return convert(raw)
    except argparse.ArgumentTypeError as err:
        raise pytest.UsageError(f"ini key {name} = {raw!r}: {err}") from None


def strip_vm_args(args: list[str]) -> list[str]:
    """The pytest arguments without the --pktgen-vm* options (to run the same session in the VM)."""
    vm_opts = {o.flag: o for o in OPTIONS if o.name.startswith("pktgen_vm")}
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        flag = arg.split("=", 1)[0]
        if flag in vm_opts:
            skip = "=" not in arg and vm_opts[flag].type is not None
            continue
        out.append(arg)
    return out

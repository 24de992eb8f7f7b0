"""Command-line options with ini keys: one help string each, precedence CLI > ini > default.

A bad value is a ``pytest.UsageError`` that names the option or ini key it came from.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from .errors import PktgenConfigError
from .host.ssh import check_host_name, parse_url
from .lab.latency import SAMPLES_PER_S, UNPACED_EVERY, check_every
from .lab.rx import BACKENDS
from .measurement import compare
from .measurement.gates import latency_requirements, requirement
from .measurement.point import AXES, check_value
from .pktgen.params import FRAME_MAX, FRAME_MIN, PARAMS, check_ifname, ipv4, ipv6, mac
from .run.runner import check_ends


def positive_int(text: str) -> int:
    if not re.fullmatch(r"\d+", str(text).strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def count(text: str) -> int:
    if not re.fullmatch(r"\d+", str(text).strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return int(text)


def even_blocks(text: str) -> int:
    """A/B blocks: an even number, so each kernel boots as often (A B B A ...)."""
    value = positive_int(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not an even number of blocks (each "
                                         "kernel boots as often: A B B A ...)")
    return value


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




def frame_sizes(text: str) -> tuple[int, ...]:
    """Frame sizes on the wire (with the 4-byte FCS), comma-separated."""
    sizes = []
    for item in str(text).replace(" ", "").split(","):
        if not re.fullmatch(r"\d+", item) or not FRAME_MIN <= int(item) <= FRAME_MAX:
            raise argparse.ArgumentTypeError(
                f"{item!r} in {text!r} is not a frame size: whole bytes on the wire with the FCS, "
                f"{FRAME_MIN} to {FRAME_MAX}, comma-separated, e.g. 64,128,1500")
        sizes.append(int(item))
    if len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"{text!r} names a frame size twice")
    return tuple(sizes)


def latency_every(text: str) -> int | str:
    """``auto`` or a latency sample of one in N (0: none)."""
    raw = str(text).strip()
    try:
        return check_every(raw if raw == "auto" else int(raw))
    except (ValueError, PktgenConfigError) as err:
        allowed = err.allowed if isinstance(err, PktgenConfigError) else "auto or a number"
        raise argparse.ArgumentTypeError(f"{text!r}: {allowed}") from None


def ratio(text: str) -> float:
    """A share: 0.001 or 0.1%."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share from 0 to 1 (or 0% to 100%)")
    return value


def ratios(text: str) -> tuple[float, ...]:
    """Shares, comma-separated: 0,0.005 or 0%,0.5%."""
    items = [item for item in str(text).replace(" ", "").split(",") if item]
    try:
        values = tuple(ratio(item) for item in items)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err} in {text!r}") from None
    if not values or len(set(values)) != len(values) or max(values) >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not loss ratios below 1, each once, "
                                         "comma-separated, e.g. 0,0.005")
    return values


def pps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a load in packets per second")
    return value


def param(text: str) -> tuple[str, str]:
    """A pktgen device parameter as NAME=VALUE (checked when a config is built)."""
    name, sep, value = str(text).partition("=")
    if not sep or not re.fullmatch(r"[a-z_0-9]+", name.strip()) or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. ratep=100000")
    return name.strip(), value.strip()


def thresholds(text: str) -> dict[str, float]:
    """A baseline's thresholds by metric: pps=2%,loss_ratio=0.1%,lat_p99_us=25%."""
    try:
        return compare.thresholds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def confidence(text: str) -> float:
    """A confidence level: 0.95 or 95%, from 50 % to below 100 %."""
    value = compare.share(text)
    if value is None or not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a confidence from 0.5 to below 1 "
                                         "(50% to 99.9%)")
    return value


def search_rate(key: str) -> Callable[[str], float | str]:
    """A search gate's value: pps, or a share of the line rate such as 95%."""
    def parse(text: str) -> float | str:
        value: float | str = str(text).strip()
        if not value.endswith("%"):
            try:
                value = float(value)
            except ValueError:
                pass
        try:
            requirement(key, value, "")
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value
    return parse


def latency_limits(text: str) -> dict[str, float]:
    """Percentiles' most µs: p99=500,p50=100 (pgrx's latency)."""
    out: dict[str, float | str] = {}
    for item in str(text).replace(" ", "").split(","):
        name, _, value = item.partition("=")
        try:
            out[name] = float(value.removesuffix("us"))
        except ValueError:
            out[name] = value
    try:
        latency_requirements(out, "")
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None
    return out


def ifname(text: str) -> str:
    try:
        return check_ifname(text)
    except PktgenConfigError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not {err.allowed}") from None


def host_ifname(text: str) -> str:
    """An interface name, or HOST:IFNAME for a NIC of a --pktgen-host."""
    where, _, name = text.rpartition(":")
    try:
        if where:
            check_host_name(where)
        check_ifname(name)
    except PktgenConfigError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not {err.allowed} (HOST:IFNAME for a NIC "
                                         "of a --pktgen-host)") from None
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None
    return text


def split_dev(text: str | None) -> tuple[str | None, str | None]:
    """``gen1:eth1`` -> ("gen1", "eth1"); ``eth1`` -> (None, "eth1")."""
    if text is None:
        return None, None
    where, _, name = text.rpartition(":")
    return where or None, name


def host_url(text: str) -> tuple[str, str]:
    """NAME=ssh://[user@]host[:port]."""
    name, sep, url = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=ssh://[user@]host[:port]")
    try:
        check_host_name(name)
        parse_url(url)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return name, url


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
    multiple: bool = False  # repeatable on the command line; whitespace-separated in ini

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS = (
    Option("pktgen_vm", "run this pytest session inside the VM lab: a virtme-ng guest booting a "
           "kernel with pktgen", False),
    Option("pktgen_vm_kernel", "kernel for the VM lab: a bzImage/vmlinuz or a built kernel "
           "tree; twice (A, then B): the session on both in alternating blocks, B compared with "
           "A point by point", (), str, "PATH", multiple=True),
    Option("pktgen_vm_blocks", "with two --pktgen-vm-kernel: how many blocks, a boot each, in "
           "the order A B B A A B B A ... (an even number)", 4, even_blocks, "N"),
    Option("pktgen_vm_cpus", "vCPUs of the VM lab", 2, positive_int, "N"),
    Option("pktgen_vm_memory", "memory of the VM lab", "2G", memory, "SIZE"),
    Option("pktgen_vm_nics", "crossover pairs of virtio-net NICs in the VM lab, each pair on a "
           "QEMU hub of its own", 2, count, "N"),
    Option("pktgen_vm_kvm", "use KVM: auto tries it and falls back to TCG", "auto",
           choice("auto", "on", "off"), "auto|on|off"),
    Option("pktgen_vm_clock", "the VM lab's clock: host (the host's time) or instructions "
           "(QEMU counts the guest's instructions, one nanosecond each: a figure is a cost in "
           "instructions, the same in every run; TCG, one vCPU; for A/B runs and bisects)",
           "host", choice("host", "instructions"), "host|instructions"),
    Option("pktgen_vm_timeout", "seconds the whole guest run may take; 0 means no limit", 0.0,
           seconds, "SECONDS"),
    Option("pktgen_vm_test_timeout", "seconds the guest may go without starting a test (the "
           "boot, or one test) before it is stopped as hung; 0 means no limit", 1800.0,
           seconds, "SECONDS"),
    Option("pktgen_dev", "the NIC pktgen sends on (device under test) on a real host; "
           "HOST:IFNAME for a NIC of a --pktgen-host", None, host_ifname, "[HOST:]IFNAME"),
    Option("pktgen_rx_dev", "the NIC that receives pktgen's frames over a cable (crossover); "
           "HOST:IFNAME for a NIC of a --pktgen-host", None, host_ifname, "[HOST:]IFNAME"),
    Option("pktgen_host", "another machine, reached over SSH (repeatable): pktgen, topologies "
           "and counters run there for NICs named NAME:IFNAME; it needs sshd, python3 (3.11+) "
           "and root there, nothing installed", (), host_url, "NAME=ssh://[USER@]HOST[:PORT]",
           multiple=True),
    Option("pktgen_ssh_config", "OpenSSH client config for --pktgen-host (Host aliases, "
           "HostName, Port, User, IdentityFile, ProxyJump)", "~/.ssh/config", str, "FILE"),
    Option("pktgen_ssh_known_hosts", "known_hosts file the --pktgen-host keys are checked "
           "against (unless given: the SSH config's UserKnownHostsFile and "
           "GlobalKnownHostsFile, ~/.ssh/known_hosts where it names none, as ssh does)",
           "~/.ssh/known_hosts", str, "FILE"),
    Option("pktgen_dst", "destination IP of a remote receiver (with --pktgen-dev and "
           "--pktgen-dst-mac)", None, str, "IP"),
    Option("pktgen_dst_mac", "MAC of a remote receiver, or of the next hop to it: frames from "
           "--pktgen-dev go there", None, str, "MAC"),
    Option("pktgen_allow_dev", "send on (or move) this device even if it carries the default "
           "route or a live TCP connection (repeatable); HOST:IFNAME for a NIC of a "
           "--pktgen-host, a bare name for this machine's only", (), host_ifname,
           "[HOST:]IFNAME", multiple=True),
    Option("pktgen_sizes", "frame sizes of a sweep, on the wire with the FCS (pkt_size = frame - "
           "4)", (64, 128, 256, 512, 1024, 1280, 1500), frame_sizes, "B,B,..."),
    Option("pktgen_count", "packets per device in each measurement round", 1_000_000, count,
           "N"),
    Option("pktgen_duration", "seconds per measurement round instead of a count (count 0)", None,
           seconds, "SECONDS"),
    Option("pktgen_threads", "pktgen threads (kpktgend_N) driving the device", 1, positive_int,
           "N"),
    Option("pktgen_clone_skb", "clone_skb: send each skb this many times", 0, count, "N"),
    Option("pktgen_repeats", "measured rounds per test (pytest-benchmark rounds)", 3,
           positive_int, "N"),
    Option("pktgen_warmup", "unmeasured rounds before them", 0, count, "N"),
    Option("pktgen_param", "any pktgen device parameter for every measurement, e.g. "
           "ratep=100000 (repeatable)", (), param, "NAME=VALUE", multiple=True),
    Option("pktgen_rx", f"receive counter for loss: {', '.join(BACKENDS)}", "ifstats",
           choice(*BACKENDS), "BACKEND"),
    Option("pktgen_latency_every", "latency sample at the kmod counter: one pktgen sequence "
           f"number in N (1: every one, 0: none), or auto: every packet up to {SAMPLES_PER_S:,} "
           f"pps, one in a power of two above, one in {UNPACED_EVERY} unpaced (a sample costs "
           "the sink pps)", "auto", latency_every, "auto|N"),
    Option("pktgen_sink", "what a topology's sink does with pktgen's frames: discard (count "
           "and drop them at its tc ingress, the cheapest: the sink is not what is measured) or "
           "stack (up its stack to UDP port 9, as a receiving host takes them)", "discard",
           choice("discard", "stack"), "MODE"),
    Option("pktgen_min_pps", "fail a measurement below this many packets per second", None,
           count, "PPS"),
    Option("pktgen_max_loss", "fail a measurement that loses more than this share", None, ratio,
           "SHARE"),
    Option("pktgen_min_ndr", "fail a throughput search whose NDR is below this many packets "
           "per second, or this share of the link's line rate (95%)", None,
           search_rate("min_ndr"), "PPS|SHARE%"),
    Option("pktgen_min_pdr", "fail a throughput search whose PDR is below this many packets "
           "per second, or this share of the link's line rate (95%)", None,
           search_rate("min_pdr"), "PPS|SHARE%"),
    Option("pktgen_max_latency", "fail a measurement whose latency percentiles exceed these "
           "(µs; measured with --pktgen-rx kmod)", None, latency_limits, "p99=500,..."),
    Option("pktgen_thresholds", "TOML file of pps and loss thresholds per test or frame size",
           None, str, "FILE"),
    Option("pktgen_baseline", "compare each measurement with this saved baseline (JSON)", None,
           str, "FILE"),
    Option("pktgen_save_baseline", "save this session's measurements as a baseline (JSON)", None,
           str, "FILE"),
    Option("pktgen_threshold", "against a baseline: the smallest change that counts, per "
           "metric (relative; a loss ratio's in shares of the frames); a point is a regression "
           "only where its confidence interval lies wholly beyond it, undecided where it "
           "straddles; metrics not named keep their defaults", compare.DEFAULT_THRESHOLDS,
           thresholds, "METRIC=SHARE,..."),
    Option("pktgen_confidence", "against a baseline: the confidence of each comparison's "
           "interval (a change smaller than the threshold is called a regression in at most "
           "half of the rest)", compare.CONFIDENCE, confidence, "LEVEL"),
    Option("pktgen_loss_ratios", "throughput searches (pktgen_search): the loss ratios a "
           "load may have and count, one goal each (0: the NDR; 0.005: a PDR)", (0.0, 0.005),
           ratios, "SHARE,..."),
    Option("pktgen_search_width", "throughput searches: how close the bounds must come, "
           "relative to the upper one", 0.005, ratio, "SHARE"),
    Option("pktgen_trial_duration", "throughput searches: seconds of the first trials", 1.0,
           seconds, "SECONDS"),
    Option("pktgen_final_duration", "throughput searches: seconds of the trials that decide "
           "the bounds", 1.0, seconds, "SECONDS"),
    Option("pktgen_duration_sum", "throughput searches: seconds of trials a bound needs", 1.0,
           seconds, "SECONDS"),
    Option("pktgen_exceed_ratio", "throughput searches: the share of a bound's trial seconds "
           "that may miss its loss ratio", 0.5, ratio, "SHARE"),
    Option("pktgen_min_load", "throughput searches: the lowest load tried, pps", 1000.0, pps,
           "PPS"),
    Option("pktgen_max_load", "throughput searches: the highest load tried, pps (default: the "
           "link's speed where known, else what pktgen sends back-to-back)", None, pps, "PPS"),
    Option("pktgen_search_warmup", "throughput searches: seconds of a warm-up trial at the "
           "max load before the search (its result is not used; 0: none)", 0.0, seconds,
           "SECONDS"),
    Option("pktgen_no_plots", "write no plots (sweep.png, search-*.png): the tables, CSV and "
           "JSON only (a plot takes seconds under the VM lab's TCG)", False, None),
    Option("pktgen_out", "directory for results and reports (writable from the VM lab too)",
           "pktgen-results", str, "DIR"),
)
BY_NAME = {o.name: o for o in OPTIONS}


def _shown(default: object) -> str:
    if isinstance(default, tuple):
        return ",".join(map(str, default)) or "none"
    if isinstance(default, dict):
        return ",".join(f"{k}={v:g}" for k, v in default.items())
    return str(default)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("pktgen", "pktgen benchmarks (pytest-pktgen)")
    for opt in OPTIONS:
        text = f"{opt.help} (ini: {opt.name}; default: {_shown(opt.default)})"
        shown = text.replace("%", "%%")  # argparse formats its help
        if opt.type is None:
            group.addoption(opt.flag, dest=opt.name, action="store_true", default=None,
                            help=shown)
        elif opt.multiple:
            group.addoption(opt.flag, dest=opt.name, type=opt.type, action="append",
                            default=None, metavar=opt.metavar, help=shown)
        else:
            group.addoption(opt.flag, dest=opt.name, type=opt.type, default=None,
                            metavar=opt.metavar, help=shown)
        parser.addini(opt.name, text, default=None)


def get(config: pytest.Config, name: str):
    """The option's value: command line, then ini file, then default."""
    opt = BY_NAME[name]
    value = config.getoption(name, None)
    if value is not None:
        return tuple(value) if opt.multiple else value
    raw = config.getini(name)
    if raw in (None, "", []):
        return opt.default
    convert = opt.type or boolean
    try:
        if opt.multiple:
            return tuple(convert(item) for item in str(raw).split())
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


def given(config: pytest.Config, name: str) -> bool:
    """Whether the user set this option (command line or ini), not just its default."""
    return config.getoption(name, None) is not None or config.getini(name) not in (None, "", [])


def check_usage(config: pytest.Config) -> None:
    """Contradictions and bad values among the options: a UsageError with a sentence."""
    for opt in OPTIONS:  # every ini value converted once: a bad one is an error now
        get(config, opt.name)
    dev, rx_dev = get(config, "pktgen_dev"), get(config, "pktgen_rx_dev")
    dst, dst_mac = get(config, "pktgen_dst"), get(config, "pktgen_dst_mac")
    hosts = [name for name, _ in get(config, "pktgen_host")]
    if len(set(hosts)) != len(hosts):
        twice = next(h for h in hosts if hosts.count(h) > 1)
        raise pytest.UsageError(f"--pktgen-host {twice}=... is given twice: one address per "
                                "host name")
    allowed = [("--pktgen-allow-dev", a) for a in get(config, "pktgen_allow_dev")]
    for flag, value in (("--pktgen-dev", dev), ("--pktgen-rx-dev", rx_dev), *allowed):
        where, _ = split_dev(value)
        if where is not None and where not in hosts:
            raise pytest.UsageError(f"{flag} {value}: there is no --pktgen-host {where}=... "
                                    f"(hosts: {', '.join(hosts) or 'none'})")
    kernels = get(config, "pktgen_vm_kernel")
    if len(kernels) > 2:
        raise pytest.UsageError(f"--pktgen-vm-kernel is given {len(kernels)} times: once (the "
                                "lab's kernel) or twice (A and B, compared)")
    if given(config, "pktgen_vm_blocks") and len(kernels) != 2:
        raise pytest.UsageError("--pktgen-vm-blocks: blocks alternate two kernels; give "
                                "--pktgen-vm-kernel twice (A, then B)")
    if get(config, "pktgen_vm_clock") == "instructions":
        if get(config, "pktgen_vm_kvm") == "on":
            raise pytest.UsageError("--pktgen-vm-clock instructions counts the instructions "
                                    "TCG runs; --pktgen-vm-kvm on asks for KVM, which has none "
                                    "to count: use one or the other")
        if given(config, "pktgen_vm_cpus") and get(config, "pktgen_vm_cpus") != 1:
            raise pytest.UsageError(f"--pktgen-vm-cpus {get(config, 'pktgen_vm_cpus')}: the "
                                    "instruction clock (--pktgen-vm-clock instructions) runs "
                                    "one vCPU (QEMU's instruction counter hangs bringing up a "
                                    "second): leave --pktgen-vm-cpus out, or give 1")
    if hosts and get(config, "pktgen_vm"):
        raise pytest.UsageError("--pktgen-vm runs in a VM without a network to other "
                                "machines; --pktgen-host names one: use one or the other")
    if get(config, "pktgen_vm") and dev:
        raise pytest.UsageError("--pktgen-vm runs in a VM whose only NICs are its own crossover "
                                f"pairs; --pktgen-dev {dev} is a device of this host: use one "
                                "or the other")
    if rx_dev and not dev:
        raise pytest.UsageError(f"--pktgen-rx-dev {rx_dev} receives what --pktgen-dev sends: "
                                "give --pktgen-dev too")
    if (dst or dst_mac) and not dev:
        raise pytest.UsageError("--pktgen-dst/--pktgen-dst-mac name a remote receiver of "
                                "--pktgen-dev: give --pktgen-dev too")
    if dev and rx_dev and dev == rx_dev:
        raise pytest.UsageError(f"--pktgen-dev and --pktgen-rx-dev are both {dev}: a crossover "
                                "needs two NICs joined by a cable")
    if rx_dev and dst_mac:
        raise pytest.UsageError(f"--pktgen-rx-dev {rx_dev} receives on this host, "
                                f"--pktgen-dst-mac {dst_mac} names a receiver elsewhere: give one")
    if dst and not dst_mac:
        raise pytest.UsageError(f"--pktgen-dst {dst} needs --pktgen-dst-mac: pktgen addresses "
                                "frames by MAC and never resolves an IP")
    if dev and not rx_dev and not dst_mac:
        raise pytest.UsageError(f"--pktgen-dev {dev}: where do its frames go? Give "
                                "--pktgen-rx-dev (a NIC of this host at the other end of its "
                                "cable) or --pktgen-dst-mac (the receiver's MAC)")
    try:
        if dst_mac:
            mac("--pktgen-dst-mac", dst_mac)
        if dst:
            (ipv6 if ":" in dst else ipv4)("--pktgen-dst", dst)
    except PktgenConfigError as err:
        raise pytest.UsageError(f"{err.param} {err.value!r}: {err.allowed}") from None
    if given(config, "pktgen_count") and given(config, "pktgen_duration"):
        raise pytest.UsageError("--pktgen-count and --pktgen-duration: a round is either a packet "
                                "count or a number of seconds, give one")
    try:
        check_ends(get(config, "pktgen_count"), get(config, "pktgen_duration"))
    except PktgenConfigError as err:
        raise pytest.UsageError(f"--pktgen-count 0: {err.allowed} (--pktgen-duration)") from None
    if get(config, "pktgen_duration") == 0 and given(config, "pktgen_duration"):
        raise pytest.UsageError("--pktgen-duration 0: a round needs some seconds")
    for name, value in get(config, "pktgen_param"):
        if name in AXES or name in ("count", "pkt_size"):
            flag = {"frame": "--pktgen-sizes", "pkt_size": "--pktgen-sizes",
                    "count": "--pktgen-count"}.get(name, "--pktgen-" + name.replace("_", "-"))
            raise pytest.UsageError(f"--pktgen-param {name}={value}: use {flag} for {name}")
        if name not in PARAMS:
            try:
                check_value(name, value)
            except PktgenConfigError as err:
                raise pytest.UsageError(f"--pktgen-param {name}={value}: {err.allowed}") from None
        try:
            PARAMS[name].check(name, value)
        except PktgenConfigError as err:
            raise pytest.UsageError(f"--pktgen-param {name}={value}: {err.allowed}") from None

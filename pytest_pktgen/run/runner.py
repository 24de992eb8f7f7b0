"""A pktgen run: devices on threads, a non-blocking start, live samples, one stop for all.

``echo start > pgctrl`` blocks until every device is done (with ``count 0``: until ``stop``),
so the start write runs in a background thread; ``stop`` sets T_STOP on every thread at once
(the paper's Ctrl-C semantics: one clean snapshot across devices). Every device's statistics are
read before anything can overwrite the shared Result buffer, and the devices are always removed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import DeviceUnsupported, PktgenConfigError, PktgenRunError
from ..host import netdev
from ..pktgen import module
from ..pktgen.caps import link_caps
from ..pktgen.check import mismatches
from ..pktgen.module import Features
from ..pktgen.params import DeviceConfig
from ..pktgen.parse import RESULT_RE, DeviceStatus
from ..pktgen.proc import Pktgen
from .guard import NamespaceLock, check_not_management

ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
RESULT_WAIT_S = 3.0  # a stopped thread writes the Result on its next loop (100 ms idle timeout)
SAMPLE_INTERVAL_S = 0.25
SLOWEST_PPS = 5_000  # deadline estimate when no rate is known: slower than any lab device


@dataclass
class Sample:
    """pkts-sofar of every device at one moment (monotonic seconds since the start)."""

    t: float
    sofar: dict[str, int]


@dataclass
class RunResult:
    """What a run did, from the kernel's own device files."""

    devices: dict[str, DeviceStatus]
    configs: dict[str, DeviceConfig]
    wall_s: float
    stopped_by_us: bool
    samples: list[Sample] = field(default_factory=list)
    # CLOCK_MONOTONIC in microseconds, the clock of pktgen's own started/stopped stamps: just
    # before ``stop`` was written and just after the blocked start write returned (None: the
    # run ended by itself)
    stop_written_us: int | None = None
    stop_returned_us: int | None = None

    @property
    def sent(self) -> int:
        """Frames the driver accepted (pktgen's pkts-sofar)."""
        return sum(s.result.sofar for s in self.devices.values())

    @property
    def errors(self) -> int:
        """Frames the driver refused (NET_XMIT_DROP/CN: e.g. a veth peer's full backlog).
        pktgen counts them but not as sent, and sends another in their place."""
        return sum(s.result.errors for s in self.devices.values())

    @property
    def offered(self) -> int:
        """Every frame pktgen handed to the driver: sent + errors."""
        return self.sent + self.errors

    @property
    def pps(self) -> int:
        """Sum of every device's pps: what all devices sent at the same time."""
        return sum(s.result.pps for s in self.devices.values())

    @property
    def bps(self) -> int:
        return sum(s.result.bps for s in self.devices.values())

    def short_devices(self) -> dict[str, tuple[int, int]]:
        """Devices with a count that sent fewer packets than asked: {dev: (sent, count)}."""
        out = {}
        for name, status in self.devices.items():
            count = int(self.configs[name].get("count", status.count))
            if count and status.result.sofar < count:
                out[name] = (status.result.sofar, count)
        return out


ENDLESS = ("a packet count above 0, or count 0 together with a duration (count 0 alone sends "
           "forever)")


def check_ends(count: int, duration: float | None, device: str | None = None) -> None:
    """A run (a round) must end: count 0 only with a duration. The one wording of the rule for
    a run, a marker and the options."""
    if count == 0 and not duration:
        raise PktgenConfigError("count", 0, ENDLESS, device)


class PktgenRun:
    """Configure, start, sample, stop and collect one pktgen run; a context manager.

    ``duration`` bounds a run (required with ``count 0``); ``timeout`` is the deadline after
    which the run is stopped and :class:`PktgenRunError` raised with the partial results.
    """

    def __init__(self, configs: Sequence[DeviceConfig], *, pktgen: Pktgen | None = None,
                 duration: float | None = None, timeout: float | None = None,
                 on_sample: Callable[[Sample], None] | None = None,
                 sample_interval: float = SAMPLE_INTERVAL_S, features: Features | None = None,
                 allow_devices: Sequence[str] = (), lock_timeout: float = 300.0):
        self.pktgen = pktgen or Pktgen()
        self.features = features
        self.allow_devices = frozenset(allow_devices)
        self._lock = NamespaceLock(self.pktgen.netns, lock_timeout)
        self.configs = {c.device: c for c in configs}
        if len(self.configs) != len(configs):
            names = [c.device for c in configs]
            dup = next(n for n in names if names.count(n) > 1)
            raise PktgenConfigError("device", dup, "each pktgen device once per run "
                                    "(use dev@N names to drive one NIC from several threads)")
        if not configs:
            raise PktgenConfigError("devices", [], "at least one device")
        if duration is not None and not duration > 0:
            raise PktgenConfigError("duration", duration, "a number of seconds above 0")
        for config in configs:
            check_ends(int(config.get("count", 1000)), duration, config.device)
        self._check_thread_sharing(configs)
        self.duration = duration
        self.timeout = timeout if timeout is not None else self._default_timeout()
        self.on_sample = on_sample
        self.sample_interval = sample_interval
        self.samples: list[Sample] = []
        self._threads = sorted({c.thread for c in configs})
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._set_up = False
        self._started_at = 0.0
        self._stop_us: tuple[int, int] | None = None

    @staticmethod
    def _check_thread_sharing(configs: Sequence[DeviceConfig]) -> None:
        # pktgen runs the running device with the earliest next_tx, and delay 0 never advances
        # it: of several endless devices on one thread only the last added would ever send.
        endless: dict[int, list[str]] = {}
        for c in configs:
            paced = any(c.get(k) for k in ("delay", "rate", "ratep"))
            if int(c.get("count", 1000)) == 0 and not paced:
                endless.setdefault(c.thread, []).append(c.device)
        for thread, devices in endless.items():
            if len(devices) > 1:
                raise PktgenConfigError(
                    "count", 0, f"a count, or a delay/rate/ratep on each device: {devices} "
                    f"share thread {thread} with count 0 and no delay, and pktgen would only "
                    "ever run the last one added", devices[-1])

    def _default_timeout(self) -> float:
        if self.duration is not None:
            return self.duration + 30
        return 2 * max(expected_seconds(c) for c in self.configs.values()) + 30

    # --- phases --------------------------------------------------------------------------
    def preflight(self, features: Features | None = None) -> None:
        """Everything the kernel would refuse mid-setup, refused before the first write: links
        that are missing, down or not Ethernet, flags this kernel does not have. (What a link
        cannot do, clone_skb or burst without shared-skb support, is probed under the
        namespace's lock at setup: DeviceUnsupported.)"""
        features = features or module.features()
        for config in self.configs.values():
            check_against_kernel(config, features, self.pktgen.netns)
            check_not_management(config.device, config.netdev, self.pktgen.netns,
                                 self.allow_devices)

    def setup(self) -> None:
        """Add every device to its thread and write its config; on any error remove them all."""
        self.preflight(self.features)
        self._lock.acquire()  # one run per namespace: start/stop/reset act on all devices
        try:
            self._set_up_devices()
        except BaseException:
            self._lock.release()
            raise

    def _set_up_devices(self) -> None:
        threads = self.pktgen.threads()
        if self._lock.fresh:
            said = remove_dead_runs_devices(self.pktgen, self._lock)
            if said:
                self._lock.echo(f"pytest-pktgen: {said}")
        for config in self.configs.values():
            if config.thread not in threads:
                raise PktgenConfigError("thread", config.thread,
                                        f"one of the pktgen threads {threads}", config.device)
        for config in self.configs.values():  # what the link can do, probed once
            caps = link_caps(self.pktgen, config.netdev)
            reason = caps.unsupported(config) if caps else None
            if reason:
                raise DeviceUnsupported(reason)
        busy = {t: self.pktgen.thread_status(t).devices for t in self._threads}
        clash = [d for devs in busy.values() for d in devs if d in self.configs]
        if clash:
            raise PktgenRunError(f"pktgen devices {clash} are already on a thread (another run?)")
        self._set_up = True
        try:
            for config in self.configs.values():
                self.pktgen.add_device(config.thread, config.device)
                self.pktgen.configure(config)
                # pktgen answers OK to values it then holds otherwise (an address it cannot
                # parse leaves the one it had, :: on a new device): read every device back
                wrong = mismatches(config, self.pktgen.device_status(config.device),
                                   shown_only=True)
                if wrong:
                    raise PktgenRunError("pktgen answered OK but holds other values than asked "
                                         "(nothing was started): " + "; ".join(wrong))
            for thread in self._threads:
                on_thread = self.pktgen.thread_status(thread).devices
                wanted = [c.device for c in self.configs.values() if c.thread == thread]
                if sorted(on_thread) != sorted(wanted):
                    raise PktgenRunError(f"pktgen thread {thread} has devices {on_thread}, "
                                         f"expected exactly {wanted}")
        except BaseException:
            self.cleanup()
            raise

    def start(self) -> None:
        """Write ``start`` in a background thread and return at once."""
        def write_start():
            try:
                self.pktgen.pgctrl("start")
            except BaseException as err:  # noqa: BLE001 - reported by wait()
                self._writer_error = err

        self._started_at = time.monotonic()
        self._writer = threading.Thread(target=write_start, name="pktgen-start", daemon=True)
        self._writer.start()

    @property
    def running(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    def sample(self) -> Sample:
        sofar = {}
        for name in self.configs:
            try:
                sofar[name] = self.pktgen.device_status(name).sofar
            except (OSError, ValueError):
                sofar[name] = -1  # the device vanished (netdev unregistered)
        sample = Sample(time.monotonic() - self._started_at, sofar)
        self.samples.append(sample)
        if self.on_sample:
            self.on_sample(sample)
        return sample

    def wait(self, within: float | None = None) -> bool | None:
        """Sample until the run ends by itself, the duration passes, or the deadline; True if
        it ended by itself (every device reached its count). With ``within``: at most that
        many seconds, then None if the run goes on (a caller on another machine waits in
        slices, to see the samples as they come: :class:`~pytest_pktgen.run.remote.RemoteRun`).

        The start write returns once no device is running, 125 ms after it asked the threads
        to start: a thread that had not picked that up yet (a busy CPU) starts its devices
        later. So the run has ended only when every device has written its run statistics."""
        end = self._started_at + (self.duration if self.duration is not None else self.timeout)
        until = end if within is None else min(end, time.monotonic() + within)
        while time.monotonic() < until:
            if self.running:
                self._writer.join(min(self.sample_interval, max(0.0, until - time.monotonic())))
            elif self._writer_error or self._all_ran():
                break
            else:  # statistics come just after the last device stops, or a thread starts late
                time.sleep(min(0.05, max(0.0, until - time.monotonic())))
            self.sample()
        if self._writer_error:
            raise self._writer_error
        over = not self.running and self._all_ran()
        if within is not None and not over and time.monotonic() < end:
            return None
        return over

    def wait_slice(self, within: float, seen: int) -> tuple[bool | None, list[Sample]]:
        """:meth:`wait` for at most ``within`` seconds, and the samples after the first
        ``seen``: one round trip for a caller on another machine."""
        return self.wait(within), self.samples[seen:]

    def _all_ran(self) -> bool:
        """Every device's Result holds statistics of a run (pktgen writes them at its end)."""
        for name in self.configs:
            try:
                if not RESULT_RE.search(self.pktgen.device_status(name).result_text):
                    return False
            except (OSError, ValueError):
                pass  # a vanished device ran as far as it could; collect() says so
        return True

    def stop(self) -> None:
        """Stop every thread at once and wait for the blocked start write to return."""
        written = time.monotonic_ns() // 1000
        self.pktgen.pgctrl("stop")
        if self._writer:
            self._writer.join(RESULT_WAIT_S)
        self._stop_us = (written, time.monotonic_ns() // 1000)

    def collect(self) -> dict[str, DeviceStatus]:
        """Every device's final status, once each Result holds the run's statistics. A device
        whose file is gone (its link was deleted, with its namespace perhaps) is a
        PktgenRunError carrying the others' results and what it had sent by the last sample."""
        deadline = time.monotonic() + RESULT_WAIT_S
        statuses: dict[str, DeviceStatus] = {}
        vanished: set[str] = set()
        restop = time.monotonic() + 0.5
        while True:
            missing = [n for n in self.configs if n not in statuses and n not in vanished]
            for name in missing:
                try:
                    status = self.pktgen.device_status(name)
                except FileNotFoundError:
                    vanished.add(name)
                    continue
                if RESULT_RE.search(status.result_text):
                    statuses[name] = status
            if len(statuses) + len(vanished) == len(self.configs):
                break
            if time.monotonic() > deadline:
                left = {n: self.pktgen.device_status(n).result_text for n in self.configs
                        if n not in statuses and n not in vanished}
                raise PktgenRunError(f"pktgen left no run statistics for {left}", statuses)
            if self._stop_us and time.monotonic() > restop:
                # a thread that saw stop before its late start runs its devices after it
                self.pktgen.pgctrl("stop")
                restop = time.monotonic() + 0.5
            time.sleep(0.02)
        if vanished:
            def seen(name: str) -> int:  # samples after it vanished say -1
                return max((s.sofar.get(name, -1) for s in self.samples), default=-1)

            gone = ", ".join(f"{n} (sent {seen(n)} by the last sample)" if seen(n) >= 0
                             else f"{n} (no sample)" for n in sorted(vanished))
            raise PktgenRunError(f"pktgen device(s) vanished mid-run: {gone}; "
                                 f"{self._diagnose(sorted(vanished))}", statuses)
        return statuses

    def _diagnose(self, devices: Sequence[str]) -> str:
        """Why devices stopped early, as far as their links tell."""
        reasons = []
        for name in devices:
            ifname = self.configs[name].netdev
            try:
                up = netdev.link_info(ifname, netns=self.pktgen.netns)["up"]
            except LookupError:
                reasons.append(f"{ifname} was deleted")
            except OSError as err:
                reasons.append(f"{ifname}'s namespace is gone ({err.strerror or err})")
            else:
                reasons.append(f"{ifname} is {'up' if up else 'down'}")
        return "; ".join(reasons)

    def cleanup(self) -> None:
        """Stop if running, and remove this run's devices from their threads (idempotent)."""
        if not self._set_up:
            return
        try:
            if self.running:
                self.stop()
            self.pktgen.remove_thread_devices(self._threads)
        finally:
            self._set_up = False
            self._lock.release()

    def finish(self, finished: bool) -> RunResult:
        """After :meth:`wait`: stop the run if it did not end by itself, collect every device's
        statistics and clean up. Raises PktgenRunError past the deadline, with the partial
        results attached."""
        try:
            timed_out = not finished and self.duration is None
            if not finished:
                self.stop()
            statuses = self.collect()
            written, returned = self._stop_us if self._stop_us else (None, None)
            result = RunResult(statuses, dict(self.configs), time.monotonic() - self._started_at,
                               stopped_by_us=not finished, samples=list(self.samples),
                               stop_written_us=written, stop_returned_us=returned)
            if timed_out:
                raise PktgenRunError(
                    f"pktgen run did not finish within its deadline of {self.timeout:.0f}s; "
                    f"stopped it: sent {result.sent} packets", statuses)
            short = result.short_devices() if finished else {}
            if short:
                sent = ", ".join(f"{n} sent {got} of {want}" for n, (got, want) in short.items())
                raise PktgenRunError(f"pktgen stopped early: {sent}; "
                                     f"{self._diagnose(sorted(short))}", statuses)
            return result
        finally:
            self.cleanup()

    # --- all in one ----------------------------------------------------------------------
    def run(self) -> RunResult:
        """Set up, start, wait, then :meth:`finish`."""
        return run_phases(self)

    def __enter__(self) -> PktgenRun:
        self.setup()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def run_phases(run) -> RunResult:
    """Set up, start, wait, then finish (cleaned up on any error): a :class:`PktgenRun`, or one
    on another machine driven from here (:class:`~pytest_pktgen.run.remote.RemoteRun`)."""
    run.setup()
    try:
        run.start()
        finished = run.wait()
    except BaseException:
        run.cleanup()
        raise
    return run.finish(finished)


def remove_dead_runs_devices(pktgen: Pktgen, lock: NamespaceLock) -> str:
    """Devices on pktgen's threads when the namespace's lock was free were left by a run that
    died without cleaning up (SIGKILL; pktgen itself stopped when its start write died):
    remove them. Call with ``lock`` just taken afresh; returns a sentence, or "" if none."""
    left = {t: pktgen.thread_status(t).devices for t in pktgen.threads()}
    left = {t: devices for t, devices in left.items() if devices}
    if not left:
        return ""
    pktgen.remove_thread_devices(sorted(left))
    owner = f"process {lock.left_by}" if lock.left_by else "a process"
    return (f"removed pktgen devices {sorted(d for ds in left.values() for d in ds)} that "
            f"{owner} left in namespace {pktgen.netns or '(this one)'} when it died")


def expected_seconds(config: DeviceConfig) -> float:
    """How long a device's run should take by what it asks: its count at its pace (``ratep``;
    ``rate`` in Mb/s over its packet size, as pktgen turns it into a delay; ``delay`` per xmit
    of ``burst`` packets), or at SLOWEST_PPS when unpaced."""
    count = int(config.get("count", 1000))
    if config.get("ratep"):
        return count / int(config.get("ratep"))
    if config.get("rate"):  # pktgen: delay = min_pkt_size * 8 bits / rate
        bits = 8 * int(config.get("min_pkt_size", config.get("pkt_size", 60)))
        return count * bits / (int(config.get("rate")) * 1e6)
    if config.get("delay"):
        burst = max(int(config.get("burst", 1)), 1)
        return -(-count // burst) * int(config.get("delay")) / 1e9
    return count / SLOWEST_PPS


def check_against_kernel(config: DeviceConfig, features: Features,
                         netns: str | None = None) -> None:
    """Raise PktgenConfigError for what this kernel and this link would refuse."""
    dev = config.device
    try:
        link = netdev.link_info(config.netdev, netns=netns)
    except LookupError:
        raise PktgenConfigError("device", dev, "an existing network device in this network "
                                f"namespace: there is no {config.netdev!r}") from None
    if link["type"] not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        raise PktgenConfigError("device", dev, f"an Ethernet or loopback device: {config.netdev}"
                                f" has link type {link['type']}")
    if not link["up"]:
        raise PktgenConfigError("device", dev, f"a device that is up: {config.netdev} is down")
    for flag in config.flags:
        name = flag.lstrip("!")
        if name == "SHARED" and not features.shared_flag:
            raise PktgenConfigError("flag", flag, "a flag this kernel has: SHARED exists from "
                                    "about Linux 6.7 on", dev)
        if name == "IPSEC" and not features.ipsec:
            raise PktgenConfigError("flag", flag, "a flag this kernel has: IPSEC needs "
                                    "CONFIG_XFRM", dev)
    if "spi" in config.params and not features.ipsec:
        raise PktgenConfigError("spi", config.get("spi"), "nothing: spi needs CONFIG_XFRM", dev)


def run(configs: Sequence[DeviceConfig] | DeviceConfig, **kwargs) -> RunResult:
    """Run pktgen once with these device configs (see :class:`PktgenRun`)."""
    if isinstance(configs, DeviceConfig):
        configs = [configs]
    return PktgenRun(configs, **kwargs).run()

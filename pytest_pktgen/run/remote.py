"""A pktgen run on another machine, driven from here.

The run itself is a :class:`~pytest_pktgen.run.runner.PktgenRun` kept by that machine's agent
(:func:`pytest_pktgen.host.new_on`); a callback cannot cross, so it is waited for in slices of
:data:`SLICE_S`: each slice brings the samples taken there meanwhile, which feed this side's
``on_sample`` (the live pps line) and stay here. When the connection goes mid-run, the agent
there stops pktgen and removes its devices by itself; this side ends the run as a
:class:`~pytest_pktgen.errors.PktgenRunError` saying what had been sent by the last sample that
came, the samples on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .. import host
from ..errors import HostLost, PktgenRunError
from ..pktgen.params import DeviceConfig
from .guard import allowed_on
from .runner import PktgenRun, RunResult, Sample, run_phases

SLICE_S = 1.0  # a round trip a second: samples here a second late at most


def new_run(host_name: str | None, configs: Sequence[DeviceConfig], *,
            on_sample: Callable[[Sample], None] | None = None, **kwargs):
    """A :class:`PktgenRun` on machine ``host_name`` (None: here), not yet set up: the run
    itself here, a :class:`RemoteRun` for another machine. ``allow_devices`` as
    ``--pktgen-allow-dev`` gives them: each applies on the machine it names
    (:func:`~pytest_pktgen.run.guard.allowed_on`)."""
    if "allow_devices" in kwargs:
        kwargs["allow_devices"] = allowed_on(kwargs["allow_devices"], host_name)
    if host_name is None:
        return PktgenRun(configs, on_sample=on_sample, **kwargs)
    return RemoteRun(host_name, host.new_on(host_name, PktgenRun, list(configs), **kwargs),
                     on_sample)


class RemoteRun:
    """A proxy to a PktgenRun on another machine with :meth:`wait` and :meth:`finish` done
    from here (see the module); every other attribute is the run's there."""

    def __init__(self, host_name: str, run, on_sample: Callable[[Sample], None] | None = None):
        self.host = host_name
        self._run = run
        self.on_sample = on_sample
        self.samples: list[Sample] = []

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._run, name)

    def wait(self) -> bool:
        """As :meth:`PktgenRun.wait`, a slice at a time."""
        while True:
            try:
                ended, new = self._run.wait_slice(SLICE_S, len(self.samples))
            except HostLost as err:
                raise self._lost(err) from err
            for sample in new:
                self.samples.append(sample)
                if self.on_sample:
                    self.on_sample(sample)
            if ended is not None:
                return ended

    def finish(self, finished: bool) -> RunResult:
        try:
            return self._run.finish(finished)
        except HostLost as err:
            raise self._lost(err) from err

    def cleanup(self) -> None:
        """The run's cleanup there; nothing to do once the host is lost (its agent undid it)."""
        try:
            self._run.cleanup()
        except HostLost:
            pass

    def run(self) -> RunResult:
        """As :meth:`PktgenRun.run`: set up, start, wait here in slices, finish."""
        return run_phases(self)

    def __enter__(self) -> RemoteRun:
        self._run.setup()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def _lost(self, err: HostLost) -> PktgenRunError:
        """The run ended by a lost connection, with what the samples had seen."""
        if not self.samples:
            seen = "before its first sample came"
        else:
            last = self.samples[-1]
            sent = {name: n for name, n in last.sofar.items() if n >= 0}
            rate = ""
            if len(self.samples) > 1 and last.t > self.samples[0].t:
                first = self.samples[0]
                moved = sum(sent.values()) - sum(max(0, n) for n in first.sofar.values())
                rate = f", {moved / (last.t - first.t):,.0f} pps"
            each = ", ".join(f"{name} {n:,}" for name, n in sorted(sent.items()))
            seen = (f"by its last sample ({last.t:.1f} s after the start) it had sent "
                    f"{sum(sent.values()):,} frames ({each}){rate}")
        return PktgenRunError(
            f"pktgen's run on host {self.host} was cut off: {err.problem}; {seen}. Its agent "
            "there stops pktgen and removes the run's devices when its connection goes",
            samples=list(self.samples))

    def __repr__(self) -> str:
        return f"<RemoteRun on {self.host}: {self._run!r}>"

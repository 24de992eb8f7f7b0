"""The pytest plugin's hooks, each delegating: the session (:mod:`pytest_pktgen.session`),
the fixtures (:mod:`pytest_pktgen.fixtures`, registered from here), sweeps, reports."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest
from pytest_benchmark import plugin as benchmark_plugin

from . import options, session, sweep
from .errors import DeviceUnsupported, VmLabError
from .lab import vm
from .measurement import report
from .session import HOSTS, KERNEL_INFO, LEFTOVERS, REPORTS, STATE, host_facts

pytest_plugins = ["pytest_pktgen.fixtures"]

MARKERS = (
    "integration: needs the real pktgen module (the VM lab: --pktgen-vm)",
    "pktgen(count=, duration=, rounds=, warmup=, rx=, flags=, ipv6=, frame=, clone_skb=, "
    "flows=, threads=, **pktgen_params): configure this test's pktgen measurement "
    "(pktgen_bench); the marker wins over the --pktgen-* options",
    "pktgen_sweep(frame=[...], clone_skb=[...], flows=[...], threads=[...], **{param: [...]}): "
    "parametrize over every combination, ids like 64B-clone0-flows8192; frame sizes are on the "
    "wire with the FCS and default to --pktgen-sizes",
    "pktgen_search(loss_ratios=, relative_width=, trial_duration=, final_trial_duration=, "
    "duration_sum=, exceed_ratio=, min_load=, max_load=): how pktgen_search finds this test's "
    "throughput (over the --pktgen-* options)",
    "pktgen_gate(min_pps=, max_loss=, min_mbps=, min_ndr=, min_pdr=, min_ratio=, "
    "relative_to=): what this test's measurements (and throughput searches: min_ndr, min_pdr) "
    "must reach; numbers or {frame: number}; min_ratio compares pps with the "
    "measurement labelled relative_to at the same point, earlier in the session",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    session.cleanup_on_sigterm()
    config.stash[STATE] = session.session_state(config)
    config.stash[LEFTOVERS] = session.clean_leftovers()
    config.stash[HOSTS] = session.connect_hosts(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session.close_hosts(config)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    """With --pktgen-vm on the host: run the same pytest session in the VM lab instead."""
    try:
        return session.run_in_vm(config)
    except (VmLabError, pytest.UsageError) as err:
        print(f"ERROR: pytest-pktgen VM lab: {err}", file=sys.stderr, flush=True)
        return pytest.ExitCode.USAGE_ERROR


def pytest_runtest_logstart(nodeid: str, location) -> None:
    """In the VM lab: tell the host's watchdog that a test starts (a hung one is stopped)."""
    vm.note_progress(nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A sweep point the device cannot do is an xfail with the reason, never an errno."""
    try:
        return (yield)
    except DeviceUnsupported as err:
        pytest.xfail(f"not applicable to this device: {err}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"pytest-pktgen: {line}" for line in config.stash.get(LEFTOVERS, [])]
    for name, connected in config.stash.get(HOSTS, {}).items():
        facts = connected.machine.facts
        lines.append(f"pytest-pktgen: host {name} ({connected.machine.url}): "
                     f"{facts['hostname']}, Linux {facts['kernel']}, Python "
                     f"{'.'.join(map(str, facts['python']))}")
        lines += [f"pytest-pktgen: host {name}: {line}" for line in connected.said]
    lab = vm.lab_info()
    if lab is None:
        return lines
    pairs = ", ".join(f"{a}<->{b}" for a, b in lab.pairs) or "none"
    return lines + [f"pktgen VM lab: kernel {lab.kernel_release}, {lab.accel.upper()}, "
                    f"{lab.cpus} vCPUs, {lab.memory}, NIC pairs (by MAC): {pairs}, "
                    f"{vm.clock_said(lab.clock)}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``pktgen_sweep`` parametrizes the test's ``pktgen_point`` over every combination."""
    marker = metafunc.definition.get_closest_marker("pktgen_sweep")
    if marker is None:
        return
    where = metafunc.definition.nodeid
    if marker.args:
        sweep.bad(f"{where}: pktgen_sweep takes keyword lists only, e.g. "
                                "pktgen_sweep(frame=[64, 1500], clone_skb=[0, 1000])")
    if "pktgen_point" not in metafunc.fixturenames:
        sweep.bad(f"{where}: pktgen_sweep needs the test to use pktgen_bench or "
                  "pktgen_search (or pktgen_point)")
    fixed = metafunc.definition.get_closest_marker("pktgen")
    points = sweep.sweep_points(metafunc.config, marker.kwargs, fixed.kwargs if fixed else {},
                                where)
    metafunc.parametrize("pktgen_point", points, ids=[p.id for p in points], indirect=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the reports and the baseline of whatever was measured."""
    state = session.config.stash.get(STATE, None)
    if state is None or not state.results:
        return
    info = session.config.stash.get(KERNEL_INFO, None)
    state.results.environment = report.environment(info, vm.lab_info(),
                                                   host_facts(session.config))
    out = options.get(session.config, "pktgen_out")
    paths = state.results.write(out, plots=not options.get(session.config, "pktgen_no_plots"),
                                baseline=options.get(session.config, "pktgen_save_baseline"))
    session.config.stash[REPORTS] = paths


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    info = config.stash.get(KERNEL_INFO, None)
    if info is not None:
        loaded = "loaded by this session" if info.loaded_by_us else "already loaded"
        terminalreporter.write_line(
            f"pktgen {info.pktgen_version} on Linux {info.kernel_release} ({loaded}): "
            f"{info.features.describe()}")
    state = config.stash.get(STATE, None)
    if state is None or not state.results:
        return
    tables = report.tables(state.results.rows) if state.results.rows else []
    if state.results.searches:
        tables += report.search_tables(state.results.searches)
    for title, lines in tables:
        terminalreporter.section(f"pktgen: {title}", sep="-")
        for line in lines:
            terminalreporter.write_line(line)
    terminalreporter.write_line(report.UNITS)
    if state.results.comparisons:
        terminalreporter.section(f"pktgen: against the baseline {state.results.baseline_path}",
                                 sep="-")
        for line in report.comparison_table(state.results.comparisons):
            terminalreporter.write_line(line)
        terminalreporter.write_line(report.comparison_summary(state.results.comparisons))
    for kind, path in config.stash.get(REPORTS, {}).items():
        terminalreporter.write_line(f"pktgen {kind}: {Path(path).resolve()}")


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_benchmark_generate_machine_info(config: pytest.Config) -> dict | None:
    """In the VM lab, pytest-benchmark's machine info with the CPU read from /proc/cpuinfo
    (py-cpuinfo takes a minute under TCG); elsewhere pytest-benchmark's own."""
    if vm.lab_info() is None:
        return None
    with mock.patch.object(benchmark_plugin, "get_cpu_info", vm.cpu_info):
        return benchmark_plugin.pytest_benchmark_generate_machine_info()


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """The environment fingerprint goes into pytest-benchmark's saved runs too."""
    machine_info["pktgen"] = report.environment(config.stash.get(KERNEL_INFO, None),
                                                vm.lab_info(), host_facts(config))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_benchmark_generate_commit_info(config: pytest.Config) -> dict | None:
    """In the VM lab, the commit info the host read (the guest runs no git on the host's
    repository: lab/vm.py GIT_GUEST_ENV); elsewhere pytest-benchmark's own."""
    lab = vm.lab_info()
    return lab.commit_info or None if lab is not None else None

"""The plugin's session: its state in pytest's stash (options checked, gates and baselines
read, results), what killed sessions left cleaned first, SIGTERM ending it as Ctrl-C does, and
the ``--pktgen-vm`` re-run of the whole session inside the VM lab."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import signal
import threading
from pathlib import Path

import pytest

from . import host, options
from . import kernels as ab
from .errors import HostError
from .host import ledger, ssh
from .lab import vm
from .measurement import compare, gates, measure, report
from .pktgen import module
from .pktgen.proc import Pktgen
from .run import leftovers
from .run.guard import ModuleUse

STATE = pytest.StashKey[measure.SessionState]()
LEFTOVERS = pytest.StashKey[list]()
KERNEL_INFO = pytest.StashKey["module.KernelInfo"]()
REPORTS = pytest.StashKey[dict]()
HOSTS = pytest.StashKey[dict]()  # name -> Connected


def session_state(config: pytest.Config) -> measure.SessionState:
    """The options checked against each other, thresholds and baseline files read: a
    UsageError for anything wrong."""
    options.check_usage(config)
    thresholds = options.get(config, "pktgen_thresholds")
    baseline = options.get(config, "pktgen_baseline")
    saved = gates.load_baseline(baseline) if baseline else None
    if saved is not None:
        gates.check_baseline_clock(saved, session_clock(config))
    return measure.SessionState(
        results=report.Results(baseline_path=baseline or ""),
        requirements=gates.option_requirements(options.get(config, "pktgen_min_pps"),
                                               options.get(config, "pktgen_max_loss"),
                                               options.get(config, "pktgen_min_ndr"),
                                               options.get(config, "pktgen_min_pdr"),
                                               options.get(config, "pktgen_max_latency")),
        thresholds=gates.Thresholds.load(thresholds) if thresholds else None,
        baseline=saved.rows if saved else None,
        baseline_path=baseline,
        baseline_thresholds=compare.with_defaults(options.get(config, "pktgen_threshold")),
        allow_devices=options.get(config, "pktgen_allow_dev"),
        search_baseline=saved.searches if saved else None,
        confidence=options.get(config, "pktgen_confidence"),
    )


def session_clock(config: pytest.Config) -> str:
    """The clock this session's figures will be in (the VM lab's, or the host's)."""
    lab = vm.lab_info()
    if lab is not None:
        return lab.clock
    return options.get(config, "pktgen_vm_clock") if options.get(config, "pktgen_vm") else "host"


def clean_leftovers() -> list[str]:
    """Before anything starts: undo what killed sessions left here (NICs home, namespaces)."""
    try:
        if os.geteuid() != 0 or not (ledger.any_dead() or Pktgen().devices_here()):
            return []
        return leftovers.clean()[0]
    except Exception as err:  # noqa: BLE001 - the cleaner never stops a session
        return [f"the cleaner of dead sessions' leftovers failed ({err!r}); run `python -m "
                "pytest_pktgen clean` to see what is left"]


class Connected:
    """A --pktgen-host in use: its machine, this session's use of pktgen there (the last
    session out unloads it, if one of ours loaded it), what its cleaner said."""

    def __init__(self, machine: ssh.SshMachine, use, said: list[str]):
        self.machine, self.use, self.said = machine, use, said


def connect_hosts(config: pytest.Config) -> dict[str, Connected]:
    """Every --pktgen-host connected and checked at once, before anything starts anywhere:
    python3, root and pktgen there (loaded if needed), what killed sessions left there undone.
    A UsageError naming every host that cannot be used (the others closed again)."""
    wanted = options.get(config, "pktgen_host")
    if not wanted:
        return {}
    ssh_config = Path(options.get(config, "pktgen_ssh_config")).expanduser()
    known = Path(options.get(config, "pktgen_ssh_known_hosts")).expanduser()
    for flag, path, default in (("--pktgen-ssh-config", ssh_config, "pktgen_ssh_config"),
                                ("--pktgen-ssh-known-hosts", known, "pktgen_ssh_known_hosts")):
        if options.given(config, default) and not path.is_file():
            raise pytest.UsageError(f"{flag} {path}: no such file")
    # known_hosts only where given: else asyncssh reads the config's UserKnownHostsFile and
    # GlobalKnownHostsFile, as ssh does (~/.ssh/known_hosts where it names none)
    known_hosts = str(known) if options.given(config, "pktgen_ssh_known_hosts") else ()
    machines = [ssh.SshMachine(name, url, config=[str(ssh_config)] if ssh_config.is_file()
                               else [], known_hosts=known_hosts)
                for name, url in wanted]
    with concurrent.futures.ThreadPoolExecutor(len(machines)) as pool:
        outcomes = list(pool.map(_connect, machines))
    failed = [str(o) for o in outcomes if isinstance(o, BaseException)]
    if failed:
        for outcome in outcomes:
            if isinstance(outcome, Connected):
                _close(outcome)
        raise pytest.UsageError("; ".join(failed))
    for connected in outcomes:
        host.register(connected.machine.name, connected.machine)
    return {c.machine.name: c for c in outcomes}


def _connect(machine: ssh.SshMachine):
    try:
        machine.connect()
        use = machine.new(ModuleUse)
        if machine.call(module.load):
            use.loaded_it()
        said = machine.call(leftovers.clean)[0]
        return Connected(machine, use, said)
    except (HostError, OSError) as err:
        machine.close()
        return err if isinstance(err, HostError) else HostError(machine.name, str(err))
    except BaseException as err:  # noqa: BLE001 - pktgen not loadable there, ...
        machine.close()
        return HostError(machine.name, f"{type(err).__name__}: {err}")


def host_facts(config: pytest.Config) -> dict[str, dict]:
    """Each --pktgen-host's facts, as its agent told them (for the environment fingerprint)."""
    return {name: c.machine.facts for name, c in config.stash.get(HOSTS, {}).items()}


def close_hosts(config: pytest.Config) -> None:
    """Each host: pktgen unloaded if this session loaded it there, the connection closed (its
    agent undoes whatever is still made there)."""
    for name, connected in config.stash.get(HOSTS, {}).items():
        _close(connected)
        host.forget(name)
    config.stash[HOSTS] = {}


def _close(connected: Connected) -> None:
    try:
        if connected.machine.lost is None:
            connected.use.release(module.unload)
    except Exception:  # noqa: BLE001 - closing undoes the rest
        pass
    connected.machine.close()


def cleanup_on_sigterm() -> None:
    """SIGTERM ends the session like Ctrl-C does: pytest then tears every fixture down, so
    namespaces, links, pktgen devices, IRQ masks and modules are undone (the default action
    would kill the process with all of them left behind)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # someone else handles it

    session_pid = os.getpid()

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills for real
        if os.getpid() != session_pid:
            # A forked child (pyroute2 makes namespace sockets in some) must die as it would
            # have, not unwind the copy of pytest's stack it carries and run tests itself.
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)


def run_in_vm(config: pytest.Config):
    if not options.get(config, "pktgen_vm") or vm.lab_info() is not None:
        return None
    session_state(config)  # every usage error before a VM boots
    invocation = config.invocation_params
    out = Path(invocation.dir, options.get(config, "pktgen_out")).resolve()
    rwdirs = [str(invocation.dir), str(config.rootpath)]
    vm.check_shell_safe("--pktgen-out", str(out))  # before anything is made of it
    if options.given(config, "pktgen_out"):  # there for the guest's tests to write into
        out.mkdir(parents=True, exist_ok=True)
    if not out.is_relative_to(invocation.dir) and not out.is_relative_to(config.rootpath):
        out.mkdir(parents=True, exist_ok=True)
        rwdirs.append(str(out))
    kernels = options.get(config, "pktgen_vm_kernel")
    clock = options.get(config, "pktgen_vm_clock")
    opts = vm.VmOptions(
        kernel=kernels[0] if kernels else None,
        cpus=1 if clock == "instructions" else options.get(config, "pktgen_vm_cpus"),
        memory=options.get(config, "pktgen_vm_memory"),
        nics=options.get(config, "pktgen_vm_nics"),
        kvm=options.get(config, "pktgen_vm_kvm"),
        clock=clock,
        timeout=options.get(config, "pktgen_vm_timeout"),
        test_timeout=options.get(config, "pktgen_vm_test_timeout"),
        rwdirs=rwdirs,
        cwd=str(invocation.dir),
    )
    args = options.strip_vm_args(list(invocation.args))
    echo = functools.partial(print, flush=True)
    if len(kernels) == 2:
        return ab.run_ab(opts, kernels, args, out, options.get(config, "pktgen_vm_blocks"),
                         compare.with_defaults(options.get(config, "pktgen_threshold")),
                         options.get(config, "pktgen_confidence"),
                         plots=not options.get(config, "pktgen_no_plots"), echo=echo)
    return vm.run_pytest_in_vm(opts, args, echo=echo)

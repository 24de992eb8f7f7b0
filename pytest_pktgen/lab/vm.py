"""The VM lab, host side: boot a pktgen-capable kernel with virtme-ng and run pytest inside it.

The guest sees the host's root filesystem read-only (so the same venv and checkout), gets
``nics`` crossover pairs of virtio-net NICs (each pair on its own QEMU hub, no host network),
and learns which NICs form which pair from a JSON file named by ``PYTEST_PKTGEN_LAB``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import VmLabError
from ..pktgen.module import module_path

LAB_ENV = "PYTEST_PKTGEN_LAB"
GIT_GUEST_ENV = "GIT_DIR=/nonexistent/pytest-pktgen-vm"  # guest_command says why
QEMU = "qemu-system-x86_64"
KVM_PROBE_TIMEOUT_S = 120
HUNG_TASK_REPORT_S = 60  # the guest kernel reports a task blocked this long (its stack)
STALL_DUMP_LEAD_S = 300  # Python stacks this long before a stalled test is stopped
KERNEL_LOG_LINES = 80  # of the guest's kernel log, shown when it hangs or crashes
# Under TCG, a static key flipped while another vCPU runs the code it patches can wedge that
# vCPU for good: it keeps executing the int3 of a text_poke that has finished (a soft lockup
# in __netif_receive_skb_core, seen when pgrx's ingress hook came and went under traffic). The
# lab holds the keys that pktgen's receive path checks on for the guest's life, from before any
# traffic: a netdev-ingress chain (ingress_needed_key, netfilter's ingress key) and an inet
# PRE_ROUTING chain (IPv4 and IPv6), both empty and on the init namespace's loopback, so tc
# and pgrx hooks come and go without patching code. Their cost: one empty-list check a packet.
HOLD_KEYS_NFT = ("add table netdev pytest_pktgen_keys; add chain netdev pytest_pktgen_keys in "
                 "{ type filter hook ingress device lo priority 0; }; "
                 "add table inet pytest_pktgen_keys; add chain inet pytest_pktgen_keys pre "
                 "{ type filter hook prerouting priority 0; }")
# MACs of lab NICs: locally administered, 02:50:47 ("PG"), then pair and side.
MAC_PREFIX = "02:50:47:00"
# virtme-ng joins --cwd, --rwdir and the kernel's path into a shell command line (and the guest
# kernel's command line) unquoted: a space breaks the lab, a ';' runs a command as root on the
# host. Only paths made of these characters are handed to it.
SHELL_SAFE = re.compile(r"[A-Za-z0-9_./+@%-]+")


def check_shell_safe(what: str, path: str) -> str:
    """``path`` if virtme-ng can take it safely, else VmLabError naming ``what``."""
    if not SHELL_SAFE.fullmatch(path):
        bad = "".join(dict.fromkeys(c for c in path if not SHELL_SAFE.fullmatch(c)))
        raise VmLabError(f"{what} {path!r} has characters the VM lab cannot pass to virtme-ng "
                         f"({bad!r}): it joins paths into a shell command line; use a path of "
                         "letters, digits and _ . / + @ % - only")
    return path


@dataclass
class VmOptions:
    """How to boot the lab. ``kernel`` None means the newest installed kernel with pktgen."""

    kernel: str | None = None
    cpus: int = 2
    memory: str = "2G"
    nics: int = 1
    kvm: str = "auto"  # auto | on | off
    clock: str = "host"  # host | instructions (ICOUNT_OPTS)
    timeout: float = 0  # seconds for the whole guest run; 0 means no limit
    test_timeout: float = 1800  # seconds without a test starting (or booting); 0: no limit
    rwdirs: list[str] = field(default_factory=list)
    cwd: str = "."


@dataclass
class LabInfo:
    """What the guest is told about its lab (written as JSON, read by :func:`lab_info`)."""

    kernel: str
    kernel_release: str
    accel: str
    cpus: int
    memory: str
    pairs: list[tuple[str, str]]
    status_file: str
    progress_file: str = ""  # the guest writes each test's id here as it starts
    kernel_log: str = ""  # the guest's kernel messages follow into this file
    # pytest-benchmark's commit info of the working directory, read here (GIT_DIR)
    commit_info: dict = field(default_factory=dict)
    clock: str = "host"  # or "instructions": QEMU's instruction counter (ICOUNT_OPTS)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def pair_macs(nics: int) -> list[tuple[str, str]]:
    """MAC addresses of each crossover pair: (sending side, receiving side)."""
    return [(f"{MAC_PREFIX}:{i:02x}:01", f"{MAC_PREFIX}:{i:02x}:02") for i in range(nics)]


def qemu_nic_opts(nics: int) -> list[str]:
    """QEMU arguments: per pair a hub of its own with two virtio-net NICs on it."""
    opts = []
    for pair, macs in enumerate(pair_macs(nics)):
        for side, mac in enumerate(macs):
            netdev = f"pg{pair}s{side}"
            opts += ["-netdev", f"hubport,id={netdev},hubid={pair}",
                     "-device", f"virtio-net-pci,netdev={netdev},mac={mac}"]
    return opts


# --- kernels ----------------------------------------------------------------------------

def bzimage_release(path: Path) -> str | None:
    """The kernel release a bzImage announces in its setup header (e.g. '6.1.0-56-amd64')."""
    try:
        with open(path, "rb") as f:
            header = f.read(0x4000)
    except OSError:
        return None
    if header[0x202:0x206] != b"HdrS":
        return None
    offset = int.from_bytes(header[0x20E:0x210], "little") + 0x200
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read(256).split(b"\0", 1)[0].decode("ascii", "replace")
    return text.split()[0] if text else None


def _config_has_pktgen(config: Path) -> bool | None:
    if not config.exists():
        return None
    text = config.read_text(errors="replace")
    return re.search(r"^CONFIG_NET_PKTGEN=[ym]$", text, re.M) is not None


def kernel_has_pktgen(kernel: Path) -> tuple[bool | None, str]:
    """(has pktgen?, release). None when nothing on the host tells; the guest checks then."""
    if kernel.is_dir():
        has = _config_has_pktgen(kernel / ".config")
        release_file = kernel / "include/config/kernel.release"
        release = release_file.read_text().strip() if release_file.exists() else kernel.name
        return has, release
    release = bzimage_release(kernel) or kernel.name.removeprefix("vmlinuz-")
    if module_path(release):
        return True, release
    for config in (kernel.parent / f"config-{release}", kernel.parent / ".config"):
        has = _config_has_pktgen(config)
        if has is not None:
            return has, release
    return None, release


def _version_key(release: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.\-+]", release)]


def find_kernel(boot: Path = Path("/boot")) -> Path:
    """The newest /boot/vmlinuz-* whose modules contain pktgen.ko."""
    found = []
    for image in boot.glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        if module_path(release):
            found.append((_version_key(release), image))
    if not found:
        raise VmLabError(
            "no installed kernel with pktgen: no /boot/vmlinuz-* has "
            "/lib/modules/<release>/kernel/net/core/pktgen.ko. Install Debian's stock kernel "
            "(apt-get install linux-image-amd64) or name one with --pktgen-vm-kernel")
    return max(found)[1]


def resolve_kernel(kernel: str | None) -> tuple[Path, str]:
    """The kernel to boot and its release; raises VmLabError with what to do."""
    if kernel is None:
        path = find_kernel()
    else:
        path = Path(kernel).expanduser()
        if not path.exists():
            raise VmLabError(f"--pktgen-vm-kernel {kernel}: no such file or directory "
                             "(give a bzImage/vmlinuz or a built kernel tree)")
        if path.is_dir() and not (path / "arch/x86/boot/bzImage").exists():
            raise VmLabError(f"--pktgen-vm-kernel {kernel}: a kernel tree, but not built "
                             "(no arch/x86/boot/bzImage): run make in it first")
    has, release = kernel_has_pktgen(path)
    if has is False:
        raise VmLabError(f"kernel {path} ({release}) is built without pktgen "
                         "(CONFIG_NET_PKTGEN is not set): enable it as y or m")
    return path, release


# --- tools ------------------------------------------------------------------------------

def find_vng() -> Path:
    """vng from the running Python's environment first (virtme-run must sit beside it)."""
    beside = Path(sys.executable).parent / "vng"
    path = beside if beside.exists() else shutil.which("vng")
    if not path:
        raise VmLabError("virtme-ng is not installed: pip install 'pytest-pktgen[vm]' "
                         "(or pip install virtme-ng) into this environment")
    return Path(path)


def check_qemu() -> str:
    path = shutil.which(QEMU)
    if not path:
        raise VmLabError(f"{QEMU} not found: apt-get install qemu-system-x86")
    return path


def check_busybox() -> None:
    # virtme-ng builds an initramfs from busybox to load a modular kernel's 9p/virtio modules.
    if not any(shutil.which(n) for n in ("busybox-static", "busybox.static", "busybox")):
        raise VmLabError("busybox not found (virtme-ng needs it for a modular kernel's "
                         "initramfs): apt-get install busybox-static")


def tool_env(vng: Path, kernel: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{vng.parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("KBUILD_OUTPUT", None)
    if kernel is not None and kernel.is_dir():
        env["KBUILD_OUTPUT"] = str(kernel)
    return env


def kernel_args(kernel: Path) -> list[str]:
    """vng arguments naming the kernel: an image by path; a built tree by no ``--run`` at all
    and KBUILD_OUTPUT (see :func:`tool_env`): vng then boots the tree's bzImage with its own
    modules (a bare ``--run`` would mean the host's running kernel)."""
    return [] if kernel.is_dir() else ["--run", str(kernel)]


# The guest sees the host's files over 9p, always: vng tries virtio-fs first and waits 3.1 s per
# shared directory for a virtiofsd to come up before it falls back to 9p; Debian 12's QEMU ships
# the C virtiofsd, which vng cannot start (measured: 10.2 s of vng's start with two --rwdir, 0.7 s
# with --force-9p). One filesystem for every lab, and no wait.
FS_ARGS = ["--force-9p"]


# Modules udev loads at boot for the q35 machine's and the emulated CPU's devices, none of which
# the lab uses: KVM (the emulated CPU offers SVM), CPU-accelerated crypto, AHCI and its CD-ROM,
# watchdogs, SMBus, input. Under TCG their coldplug held the boot at udev for 13 of its 20 s;
# denied to udev's alias lookups (an explicit `modprobe NAME` still loads one) the boot takes 14.
# A module missing from the kernel is no error, so one list serves every kernel.
BOOT_MODULES_UNUSED = (
    "kvm_amd", "kvm_intel", "kvm", "irqbypass", "ccp", "crct10dif_pclmul", "crc32_pclmul",
    "crc32c_intel", "ghash_clmulni_intel", "sha1_ssse3", "sha256_ssse3", "sha512_ssse3",
    "aesni_intel", "crypto_simd", "cryptd", "ahci", "libahci", "libata", "sr_mod", "cdrom", "sg",
    "iTCO_wdt", "iTCO_vendor_support", "i6300esb", "intel_pmc_bxt", "lpc_ich", "i2c_i801",
    "psmouse", "serio_raw", "evdev", "pcspkr", "button", "qemu_fw_cfg", "powernow_k8")

# Under TCG the emulated CPU claims no constant TSC, so the guest kernel takes its two vCPUs'
# TSCs for unsynchronized and keeps time with the HPET: every clock read (pktgen stamps each
# packet and paces by the clock, pgrx reads it for each latency sample) is then an emulated MMIO
# access, slower than the rest of pgrx's work for a packet. QEMU's TCG TSC is the host's (one
# counter for all vCPUs, at the host's rate: the guest calibrates 2596.109 MHz where the host
# says 2596.128), so the guest may trust it, as a real host does its constant TSC.
TCG_CLOCK = "tsc=reliable"

# The instruction clock (--pktgen-vm-clock instructions): QEMU counts the guest's instructions
# and, while the guest runs, its clock is that count, one nanosecond each (shift=0); while it
# is idle, its clock runs at the host's pace (sleep=on: with sleep=off an idle guest's clock
# jumped to its next timer, so a guest waiting on the host's files saw seconds pass in
# milliseconds, and pyroute2's wait for its child process timed out at once; seen in CI);
# align=off: nothing slows a busy guest down to the host's pace. A busy guest's time is then
# a cost in instructions, the same in every run: pktgen on a dummy, 200,000 frames a round,
# gave 360,459 to 360,485 pps over six rounds (0.007 %), where the host's clock gave 101,424
# to 123,368 (18 %). TCG runs one vCPU so: with two, QEMU 7.2 hung bringing up the second
# (seen with shift=0 and shift=4). Nothing is cached or stalled in an instruction count: a
# patch's cost in memory traffic is not seen.
ICOUNT_OPTS = ["-icount", "shift=0,sleep=on,align=off"]
CLOCKS = ("host", "instructions")

# The guest's Python (interpreter, standard library, the venv) comes over shares of its own that
# the guest mounts read-only with cache=loose at the same paths: the root filesystem's 9p mount
# caches nothing, so every Python process read its interpreter and every module again and every
# stat() crossed to the host (6.7 ms each under TCG). Nothing on these paths changes while the
# lab runs; the checkout (the package itself, tests, results) stays on the uncached mount.
PY_TAG = "pktgen-py"
PY_MOUNT = "ro,trans=virtio,version=9p2000.L,cache=loose,msize=512000"


PACKAGE = Path(__file__).resolve().parents[1]  # pytest_pktgen itself, wherever it is installed


def python_trees(keep_writable: list[str]) -> list[str]:
    """The directories of this Python the guest can see cached: the venv (``sys.prefix``),
    its base installation (``sys.base_prefix``; only the standard library for a Python in /usr
    or /, shared with the whole system), where its packages live, and this package (an
    editable install's lives in its checkout). None that holds a directory the guest writes
    (``keep_writable``), none that is not shell-safe."""
    def base(path: str) -> str:
        return path if Path(path).resolve() not in (Path("/"), Path("/usr")) else ""

    found = [base(sys.base_prefix) or sysconfig.get_path("stdlib"), sys.prefix,
             sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), str(PACKAGE)]
    trees: list[str] = []
    for tree in sorted({str(Path(t).resolve()) for t in found if t and Path(t).is_dir()},
                       key=len):
        inside = Path(tree)
        if (not SHELL_SAFE.fullmatch(tree) or str(inside) in ("/", "/usr")
                or any(inside == Path(t) or inside.is_relative_to(t) for t in trees)
                or any(Path(w).resolve().is_relative_to(inside) for w in keep_writable)):
            continue
        trees.append(tree)
    return trees


def compile_package() -> None:
    """This package's byte code written here, before the guest reads it: the guest sees it
    read-only (or through an overlay it throws away), so a module without a current .pyc is
    compiled again by every Python the guest starts (seen: 51 modules, 2 s of a trivial
    session under TCG, after an edit or in a fresh checkout, where pip compiled none)."""
    import compileall

    compileall.compile_dir(str(PACKAGE), quiet=2)


def python_share_opts(trees: list[str]) -> list[str]:
    """QEMU arguments exporting each tree read-only on a virtio-9p device of its own."""
    opts = []
    for i, tree in enumerate(trees):
        opts += ["-fsdev", f"local,id={PY_TAG}{i},path={tree},security_model=none,readonly=on",
                 "-device", f"virtio-9p-pci,fsdev={PY_TAG}{i},mount_tag={PY_TAG}{i}"]
    return opts


def python_mounts(trees: list[str]) -> str:
    """The guest's shell commands mounting the trees over their own paths, outermost first; one
    that cannot be mounted stays on the uncached root (and says so)."""
    return "".join(
        f"mount -t 9p -o {PY_MOUNT} {PY_TAG}{i} {shlex.quote(tree)} || echo 'pytest-pktgen VM "
        f"lab: {tree} not cached'; " for i, tree in enumerate(trees))


def vng_command(vng: Path, kernel: Path, opts: VmOptions, accel: str, command: str,
                python: list[str] | None = None) -> list[str]:
    """The vng command line; ``python`` the trees of :func:`python_trees` to share cached."""
    cmd = [str(vng), *kernel_args(kernel), *FS_ARGS, "--disable-microvm", "--cpus", str(opts.cpus),
           "--memory", opts.memory, "--cwd", opts.cwd,
           "--append=modprobe.blacklist=" + ",".join(BOOT_MODULES_UNUSED)]
    if accel == "tcg":
        cmd += ["--disable-kvm", "--append=" + TCG_CLOCK]
    for rwdir in dict.fromkeys(opts.rwdirs):
        cmd.append(f"--rwdir={rwdir}")
    qemu = qemu_nic_opts(opts.nics) + python_share_opts(python or [])
    if opts.clock == "instructions":
        qemu += ICOUNT_OPTS
    if qemu:
        cmd.append("--qemu-opts=" + " ".join(qemu))
    return cmd + ["--exec", command]


def probe_kvm(vng: Path, kernel: Path) -> tuple[bool, str]:
    """Can this host boot the kernel under KVM? (Some hosts offer /dev/kvm but abort on MSRs.)"""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    cmd = [str(vng), *kernel_args(kernel), *FS_ARGS, "--cpus", "1", "--memory", "512M",
           "--exec", "true"]
    # its own process group: a probe that hangs is ended with the QEMU that vng started
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=tool_env(vng, kernel), stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=KVM_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        return False, f"a KVM boot took over {KVM_PROBE_TIMEOUT_S}s"
    finally:
        if proc.poll() is None:  # interrupted: no QEMU outlives the probe
            _kill_group(proc)
    if proc.returncode == 0:
        return True, "KVM"
    lines = [ln for ln in output.splitlines() if "error" in ln.lower()]
    return False, (lines[0].strip() if lines else f"KVM boot exited {proc.returncode}")


def choose_accel(vng: Path, kernel: Path, mode: str, clock: str = "host") -> tuple[str, str]:
    """('kvm'|'tcg', why) per --pktgen-vm-kvm auto|on|off (and the clock: the instruction
    clock is TCG's)."""
    if clock == "instructions":
        if mode == "on":
            raise VmLabError("--pktgen-vm-kvm on: the instruction clock "
                             "(--pktgen-vm-clock instructions) counts TCG's instructions; KVM "
                             "has none to count")
        return "tcg", "the instruction clock counts TCG's instructions"
    if mode == "off":
        return "tcg", "KVM off by request"
    ok, why = probe_kvm(vng, kernel)
    if ok:
        return "kvm", "KVM works"
    if mode == "on":
        raise VmLabError(f"--pktgen-vm-kvm on, but KVM cannot boot the kernel: {why}")
    return "tcg", f"KVM unusable: {why}"


def clock_said(clock: str) -> str:
    """The lab's clock in a header's words."""
    if clock == "instructions":
        return "clock: instructions (1 ns is one instruction: figures are costs, not speeds)"
    return "clock: the host's"


# --- running ----------------------------------------------------------------------------

def guest_command(python: str, pytest_args: list[str], lab_file: str, cwd: str,
                  status_file: str, trees: list[str] | None = None, kernel_log: str = "",
                  dump_after: float = 0, hold_keys: bool = False) -> str:
    """The shell command the guest runs: the Python trees mounted cached, pytest in the lab,
    then its exit code into a file (the shell writes it, so nested pytest sessions cannot).

    With ``kernel_log``, the guest's kernel messages follow into that file as they come (the
    console goes nowhere under vng: a hung guest's log is all there is to say why), and the
    kernel reports a task blocked for a minute (its stack) there. With ``dump_after``, pytest
    prints every thread's Python stack when a test runs that many seconds. With
    ``hold_keys``, the kernel's per-packet static keys of ingress and PRE_ROUTING hooks are
    held on from the start (:data:`HOLD_KEYS_NFT`)."""
    # vng may drop the first 100-200 bytes of console output: lead with a blank padding line.
    pad = "printf '%200s\\n' ''"
    if dump_after:
        pytest_args = ["-o", f"faulthandler_timeout={dump_after:.0f}", *pytest_args]
    run = [python, "-m", "pytest", *pytest_args]
    prologue = ""
    if hold_keys:
        prologue = (f"nft {shlex.quote(HOLD_KEYS_NFT)} || echo 'pytest-pktgen VM lab: nft could "
                    "not hold the static keys of ingress and PRE_ROUTING hooks on: a hook "
                    "added or removed under traffic may wedge a vCPU (see HOLD_KEYS_NFT)'; ")
    if kernel_log:
        prologue += (f"echo {HUNG_TASK_REPORT_S} > /proc/sys/kernel/hung_task_timeout_secs "
                     f"2>/dev/null; dmesg --follow > {shlex.quote(kernel_log)} 2>&1 & ")
    # the guest's environment is its own: pass on CI (fail, never skip, there) and PKTGEN_*
    passed = "".join(f"{k}={shlex.quote(v)} " for k, v in sorted(os.environ.items())
                     if k == "CI" or k.startswith("PKTGEN_"))
    # GIT_DIR: no git in the guest reads the host's repository: pytest-benchmark runs `git
    # describe --dirty` in the working directory as it adds its options, which over 9p stats
    # and hashes every file again (a kernel tree's 78,311 under TCG: minutes before the first
    # test); the host reads it instead (LabInfo.commit_info)
    return (f"{pad}; {prologue}{python_mounts(trees or [])}"
            f"cd {shlex.quote(cwd)} && {passed}{GIT_GUEST_ENV} {LAB_ENV}={shlex.quote(lab_file)} "
            f"PATH={shlex.quote(str(Path(python).parent))}:$PATH {shlex.join(run)}; "
            f"echo $? > {shlex.quote(status_file)}")


def run_pytest_in_vm(opts: VmOptions, pytest_args: list[str], *, echo=print) -> int:
    """Boot the lab, run pytest with ``pytest_args`` in it, stream its output; its exit code."""
    check_qemu()
    check_busybox()
    vng = find_vng()
    kernel, release = resolve_kernel(opts.kernel)
    check_shell_safe("the kernel", str(kernel))
    check_shell_safe("the working directory", opts.cwd)
    for rwdir in opts.rwdirs:
        check_shell_safe("the writable directory", rwdir)
    check_shell_safe("the state directory (XDG_CACHE_HOME or HOME)", _state_dir())
    if opts.clock not in CLOCKS:
        raise VmLabError(f"the VM lab's clock {opts.clock!r}: one of {', '.join(CLOCKS)}")
    if opts.clock == "instructions" and opts.cpus != 1:
        raise VmLabError(f"the instruction clock runs one vCPU ({opts.cpus} asked): QEMU's "
                         "instruction counter hangs bringing up a second")
    accel, why = choose_accel(vng, kernel, opts.kvm, opts.clock)
    workdir = Path(tempfile.mkdtemp(prefix="pytest-pktgen-vm-", dir=_state_dir()))
    try:
        from pytest_benchmark.utils import get_commit_info  # what the guest's git may not read

        lab = LabInfo(str(kernel), release, accel, opts.cpus, opts.memory, pair_macs(opts.nics),
                      str(workdir / "exitstatus"), str(workdir / "progress"),
                      str(workdir / "kernel.log"), get_commit_info(), opts.clock)
        lab_file = workdir / "lab.json"
        lab_file.write_text(lab.to_json())
        opts = VmOptions(**{**asdict(opts), "rwdirs": [str(workdir), *opts.rwdirs]})
        # The command goes to the guest as a script in the shared work directory, not on the
        # guest kernel's command line (2048 bytes on x86, where vng would put it in base64).
        script = workdir / "run.sh"
        trees = python_trees([opts.cwd, *opts.rwdirs])
        compile_package()
        dump_after = max(opts.test_timeout - STALL_DUMP_LEAD_S, opts.test_timeout / 2)
        script.write_text(guest_command(sys.executable, pytest_args, str(lab_file), opts.cwd,
                                        lab.status_file, trees, lab.kernel_log,
                                        dump_after, hold_keys=accel == "tcg") + "\n")
        cmd = vng_command(vng, kernel, opts, accel, f"sh {script}", trees)
        echo(f"pytest-pktgen VM lab: kernel {release} ({kernel}), {accel.upper()} ({why}), "
             f"{opts.cpus} vCPUs, {opts.memory}, {opts.nics} crossover NIC pair(s), "
             f"{clock_said(opts.clock)}; "
             f"{_deadlines(opts)}")
        started = time.monotonic()
        watch = Watchdog(opts.timeout, opts.test_timeout, Path(lab.progress_file))
        code = _run_streaming(cmd, tool_env(vng, kernel), watch)
        status = Path(lab.status_file)
        elapsed = time.monotonic() - started
        if watch.why:
            echo(f"pytest-pktgen VM lab: {watch.why}; stopped")
            echo(log_tail(Path(lab.kernel_log)))
            return 3
        if not status.exists():
            echo(f"pytest-pktgen VM lab: the guest ended after {elapsed:.0f}s without running "
                 f"pytest to its end (vng exit {code}): boot failure or crash")
            echo(log_tail(Path(lab.kernel_log)))
            return code or 3
        echo(f"pytest-pktgen VM lab: guest finished in {elapsed:.0f}s")
        return int(status.read_text().strip() or 3)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def log_tail(path: Path, lines: int = KERNEL_LOG_LINES) -> str:
    """The last ``lines`` of the guest's kernel log, said as such (or that there is none)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "pytest-pktgen VM lab: no kernel log from the guest"
    head = (f"pytest-pktgen VM lab: the guest kernel's last {min(lines, len(text))} of "
            f"{len(text)} messages:")
    return "\n".join([head, *text[-lines:]])


def _state_dir() -> str:
    # Not /tmp: the guest mounts its own tmpfs there, hiding a host --rwdir below it.
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-pktgen"
    base.mkdir(parents=True, exist_ok=True)
    return str(base)


# QEMU says this of every lab hub: true, intended (no host network), and only confusing.
_HUB_WARNING = re.compile(rb"qemu-system-x86_64: warning: hub \d+ is not connected to host "
                          rb"network\r?\n")
_HUB_PREFIX = b"qemu-system-x86_64: warning: hub"


class _OutputFilter:
    """Drops QEMU's hub warnings from a byte stream without holding back anything else: only
    a trailing piece that could still become such a warning waits for its line's end."""

    def __init__(self):
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = _HUB_WARNING.sub(b"", self.pending + chunk)
        start = data.rfind(b"\n") + 1
        tail = data[start:]
        if tail and (_HUB_PREFIX.startswith(tail) or tail.startswith(_HUB_PREFIX)):
            self.pending = tail
            return data[:start]
        self.pending = b""
        return data

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return data


def _deadlines(opts: VmOptions) -> str:
    total = f"deadline {opts.timeout:.0f}s" if opts.timeout else "no deadline"
    if not opts.test_timeout:
        return total
    return (f"{total}; stopped as hung after {opts.test_timeout:.0f}s without a test starting "
            "(--pktgen-vm-test-timeout)")


class Watchdog:
    """When to stop the guest: ``timeout`` seconds in all, or ``test_timeout`` seconds since
    the last test started in the guest (the boot counts as one), whichever comes first; 0
    means no limit. ``why`` says which struck."""

    def __init__(self, timeout: float, test_timeout: float, progress: Path):
        self.timeout, self.test_timeout, self.progress = timeout, test_timeout, progress
        self.started = time.time()
        self.why: str | None = None

    def expired(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if self.timeout and now - self.started >= self.timeout:
            self.why = f"the guest ran out of time ({self.timeout:.0f}s)"
        elif self.test_timeout:
            try:
                last, test = self.progress.stat().st_mtime, self.progress.read_text().strip()
            except OSError:
                last, test = self.started, ""
            if now - max(last, self.started) >= self.test_timeout:
                where = f"in {test}" if test else "booting, before the first test"
                self.why = (f"the guest made no progress for {self.test_timeout:.0f}s ({where}; "
                            "--pktgen-vm-test-timeout)")
        return self.why is not None


def note_progress(nodeid: str) -> None:
    """In the guest: a test starts (the host's :class:`Watchdog` reads it)."""
    lab = lab_info()
    if lab is not None and lab.progress_file:
        Path(lab.progress_file).write_text(nodeid + "\n")


def _run_streaming(cmd: list[str], env: dict, watch: Watchdog) -> int:
    """Run vng, copying its output to our stdout as it comes; Ctrl-C or SIGTERM kill QEMU too.

    vng gets a pipe, not our stdout: QEMU reopens a file it is handed and writes from offset
    0, which overwrote everything a redirected log already held.
    """
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def pump():
        quiet = _OutputFilter()
        for chunk in iter(lambda: os.read(proc.stdout.fileno(), 65536), b""):
            os.write(sys.stdout.fileno(), quiet.feed(chunk))
        os.write(sys.stdout.fileno(), quiet.flush())

    reader = threading.Thread(target=pump, name="vng-output", daemon=True)
    reader.start()

    def terminate(signum, _frame):
        _kill_group(proc)
        raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)

    old = {s: signal.signal(s, terminate) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                return proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                if watch.expired():
                    _kill_group(proc)
                    return -signal.SIGALRM
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            _kill_group(proc)
        reader.join(5)
        proc.stdout.close()


def _kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop vng and everything it started (QEMU is in its process group): SIGTERM, then
    SIGKILL after ``grace`` seconds, and return only once the whole group is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# --- guest side -------------------------------------------------------------------------

def lab_info() -> LabInfo | None:
    """Inside the VM lab: what the host said about it. None outside the lab."""
    path = os.environ.get(LAB_ENV)
    if not path:
        return None
    data = json.loads(Path(path).read_text())
    data["pairs"] = [tuple(p) for p in data["pairs"]]
    return LabInfo(**data)


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """The CPU as py-cpuinfo names it (brand_raw, arch, bits, count, vendor_id_raw, flags,
    hz_advertised_friendly), read from ``/proc/cpuinfo``: py-cpuinfo itself starts a child
    Python and times CPUID loops, a minute under TCG for every --benchmark-save or -json."""
    blocks = [b for b in Path(path).read_text().split("\n\n") if b.strip()]
    first: dict[str, str] = {}
    for line in blocks[0].splitlines() if blocks else []:
        key, _, value = line.partition(":")
        first[key.strip()] = value.strip()
    mhz = first.get("cpu MHz", "")
    return {"brand_raw": first.get("model name", ""), "arch": platform.machine().upper(),
            "bits": 64 if sys.maxsize > 2**32 else 32, "count": len(blocks),
            "vendor_id_raw": first.get("vendor_id", ""),
            "flags": sorted(first.get("flags", "").split()),
            "hz_advertised_friendly": f"{float(mhz) / 1000:.4f} GHz" if mhz else "",
            "source": "/proc/cpuinfo (pytest-pktgen, VM lab)"}

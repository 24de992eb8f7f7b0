"""The VM lab's host side: kernels, NIC pairs, the guest command, and errors before any boot."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_pktgen import VmLabError
from pytest_pktgen.lab import vm
from pytest_pktgen.options import strip_vm_args


def test_pair_macs_and_qemu_hubs():
    assert vm.pair_macs(2) == [("02:50:47:00:00:01", "02:50:47:00:00:02"),
                               ("02:50:47:00:01:01", "02:50:47:00:01:02")]
    opts = vm.qemu_nic_opts(2)
    netdevs = [o for o in opts if o.startswith("hubport")]
    # each pair on a hub of its own, and no user/tap/bridge netdev: the guest has no host network
    assert netdevs == ["hubport,id=pg0s0,hubid=0", "hubport,id=pg0s1,hubid=0",
                       "hubport,id=pg1s0,hubid=1", "hubport,id=pg1s1,hubid=1"]
    assert opts.count("-netdev") == 4
    assert "virtio-net-pci,netdev=pg1s1,mac=02:50:47:00:01:02" in opts
    assert vm.qemu_nic_opts(0) == []


def test_vng_command(tmp_path):
    opts = vm.VmOptions(cpus=3, memory="1536M", nics=1, rwdirs=["/a", "/b", "/a"], cwd="/a")
    cmd = vm.vng_command(Path("/v/vng"), Path("/boot/k"), opts, "tcg", "true")
    assert cmd[:3] == ["/v/vng", "--run", "/boot/k"]
    assert "--disable-kvm" in cmd and "--disable-microvm" in cmd
    assert "--force-9p" in cmd  # no 3 s wait per shared directory for a virtiofsd
    assert cmd.count("--rwdir=/a") == 1 and "--rwdir=/b" in cmd
    assert cmd[cmd.index("--cpus") + 1] == "3" and cmd[cmd.index("--memory") + 1] == "1536M"
    assert cmd[-2:] == ["--exec", "true"]
    assert not any(c.startswith("--network") for c in cmd)
    kvm = vm.vng_command(Path("v"), Path("k"), opts, "kvm", "true")
    assert "--disable-kvm" not in kvm
    # under TCG the guest keeps time with the TSC (QEMU's is the host's), not the HPET
    assert "--append=tsc=reliable" in cmd and not any("tsc=" in c for c in kvm)
    # udev is denied the boot's unused modules (KVM, AHCI, ...), never the lab's
    denied = next(c for c in cmd if c.startswith("--append=modprobe.blacklist="))
    assert {"kvm", "ahci"} <= set(denied.split("=", 2)[2].split(","))
    assert not {"virtio_net", "pktgen", "veth", "dummy"} & set(denied.split("=", 2)[2].split(","))


def test_the_instruction_clock_is_qemu_s_instruction_counter_on_tcg_with_one_vcpu():
    opts = vm.VmOptions(cpus=1, nics=0, clock="instructions")
    cmd = vm.vng_command(Path("/v/vng"), Path("/boot/k"), opts, "tcg", "true")
    assert "--qemu-opts=-icount shift=0,sleep=on,align=off" in cmd
    host = vm.vng_command(Path("/v/vng"), Path("/boot/k"), vm.VmOptions(nics=0), "tcg", "true")
    assert not any("icount" in c for c in host)
    # TCG without a KVM probe (no vng is run: this one does not exist), KVM refused
    assert vm.choose_accel(Path("/nonexistent/vng"), Path("/k"), "auto", "instructions") == (
        "tcg", "the instruction clock counts TCG's instructions")
    with pytest.raises(VmLabError, match="KVM has none to count"):
        vm.choose_accel(Path("/nonexistent/vng"), Path("/k"), "on", "instructions")
    with pytest.raises(VmLabError, match=r"runs one vCPU \(2 asked\)"):
        vm.run_pytest_in_vm(vm.VmOptions(cpus=2, clock="instructions"), [])


def test_python_is_shared_cached_and_never_over_what_the_guest_writes(tmp_path):
    trees = vm.python_trees([str(tmp_path)])
    assert str(Path(sys.prefix).resolve()) in trees  # the venv the guest runs
    assert all(not Path(a).is_relative_to(b) for a in trees for b in trees if a != b)
    writable = Path(sys.prefix, "lib").resolve()  # a directory the guest writes, in the venv
    fewer = vm.python_trees([str(writable)])
    assert str(Path(sys.prefix).resolve()) not in fewer
    assert not any(writable.is_relative_to(t) for t in fewer) and len(fewer) >= len(trees) - 1
    opts = vm.VmOptions(nics=1, rwdirs=[str(tmp_path)], cwd=str(tmp_path))
    cmd = vm.vng_command(Path("/v/vng"), Path("/boot/k"), opts, "tcg", "true", trees)
    qemu = next(c for c in cmd if c.startswith("--qemu-opts=")).split()
    assert cmd[-2:] == ["--exec", "true"]  # vng takes everything after --qemu-opts as QEMU's
    for i, tree in enumerate(trees):
        assert (f"local,id=pktgen-py{i},path={tree},security_model=none,readonly=on"
                in qemu)
        assert f"virtio-9p-pci,fsdev=pktgen-py{i},mount_tag=pktgen-py{i}" in qemu
    assert "virtio-net-pci,netdev=pg0s0,mac=02:50:47:00:00:01" in qemu
    command = vm.guest_command(sys.executable, [], "/lab.json", "/w", "/s", trees)
    mounts = command.index(f"pktgen-py0 {trees[0]}")
    assert "cache=loose" in command and ",ro," not in command and "-o ro," in command
    assert mounts < command.index("cd /w") < command.index("-m pytest")


def test_strip_vm_args():
    args = ["--pktgen-vm", "-x", "--pktgen-vm-kernel", "/k", "--pktgen-vm-nics=2", "tests/a.py",
            "--pktgen-vm-kvm", "off", "--pktgen-out", "res", "-k", "crossover"]
    assert strip_vm_args(args) == ["-x", "tests/a.py", "--pktgen-out", "res", "-k", "crossover"]


def test_guest_command_keeps_arguments_intact(tmp_path, monkeypatch):
    fake_python = tmp_path / "bin" / "python"
    fake_python.parent.mkdir()
    fake_python.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'import json, os, sys; print(json.dumps("
        f"[sys.argv[1:], os.getcwd(), os.environ[\"{vm.LAB_ENV}\"], "
        f"os.environ[\"PATH\"].split(\":\")[0]]))' \"$@\"\n")
    fake_python.chmod(0o755)
    args = ["-k", "a and not b", "it's", "$HOME", "--x=\"y\""]
    status = tmp_path / "exit status"
    monkeypatch.setenv("PKTGEN_SOAK_RUNS", "8 runs")
    command = vm.guest_command(str(fake_python), args, "/lab dir/lab.json", str(tmp_path),
                               str(status))
    assert "PKTGEN_SOAK_RUNS='8 runs' " in command
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert status.read_text() == "0\n"
    argv, cwd, lab_file, path0 = json.loads(out.stdout.strip().splitlines()[-1])
    assert argv == ["-m", "pytest", *args]
    assert cwd == str(tmp_path) and lab_file == "/lab dir/lab.json"
    assert path0 == str(fake_python.parent)
    assert out.stdout.startswith(" " * 200 + "\n")  # the padding line vng may eat into


def test_find_kernel_and_release():
    kernel = vm.find_kernel()  # `make deps` installed Debian's stock kernel
    release = vm.bzimage_release(kernel)
    assert kernel.name == f"vmlinuz-{release}"
    assert vm.kernel_has_pktgen(kernel) == (True, release)
    assert vm.resolve_kernel(str(kernel)) == (kernel, release)


def test_no_kernel_with_pktgen(tmp_path):
    (tmp_path / "vmlinuz-0.0.1-nopktgen").write_bytes(b"\0" * 1024)
    with pytest.raises(VmLabError, match="apt-get install linux-image-amd64"):
        vm.find_kernel(tmp_path)


def test_kernel_tree_without_pktgen(tmp_path):
    (tmp_path / "arch/x86/boot").mkdir(parents=True)
    (tmp_path / "arch/x86/boot/bzImage").write_bytes(b"")
    (tmp_path / ".config").write_text("CONFIG_NET=y\n# CONFIG_NET_PKTGEN is not set\n")
    with pytest.raises(VmLabError, match="built without pktgen"):
        vm.resolve_kernel(str(tmp_path))
    (tmp_path / ".config").write_text("CONFIG_NET=y\nCONFIG_NET_PKTGEN=y\n")
    assert vm.resolve_kernel(str(tmp_path))[0] == tmp_path


def test_unbuilt_tree_and_missing_path(tmp_path):
    with pytest.raises(VmLabError, match="not built"):
        vm.resolve_kernel(str(tmp_path))
    with pytest.raises(VmLabError, match="no such file"):
        vm.resolve_kernel(str(tmp_path / "nope"))


def test_no_virtme_ng(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VmLabError, match=r"pip install 'pytest-pktgen\[vm\]'"):
        vm.find_vng()


def _run_vm(pytester, *args, env_path=None, cwd=None):
    pytester.makepyfile("def test_x(): pass")
    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    return subprocess.run([sys.executable, "-m", "pytest", "--pktgen-vm", *args],
                          cwd=cwd or pytester.path, env=env, capture_output=True, text=True,
                          timeout=60)


def test_errors_before_boot_no_qemu(pytester, tmp_path):
    proc = _run_vm(pytester, env_path=str(tmp_path))
    assert proc.returncode == 4
    assert "qemu-system-x86_64 not found: apt-get install qemu-system-x86" in proc.stderr


def test_errors_before_boot_bad_kernel_path(pytester):
    proc = _run_vm(pytester, "--pktgen-vm-kernel", "/no/such/bzImage")
    assert proc.returncode == 4
    assert "--pktgen-vm-kernel /no/such/bzImage: no such file or directory" in proc.stderr
    assert "guest" not in proc.stdout  # nothing booted


def test_paths_that_are_shell_text_are_refused_before_anything_is_made(pytester, tmp_path):
    """virtme-ng joins paths into a shell command line: a ';' in --pktgen-out must not run
    anything on the host, nor make the directory."""
    out, marker = tmp_path / "x;touch", tmp_path / "y"
    proc = _run_vm(pytester, f"--pktgen-out={out} {marker};")
    assert proc.returncode == 4
    assert f"--pktgen-out '{out} {marker};' has characters the VM lab cannot pass to " \
           "virtme-ng ('; ')" in proc.stderr
    assert "guest" not in proc.stdout  # nothing booted
    assert list(tmp_path.iterdir()) == []  # no command ran, no directory was made
    spaced = pytester.path / "a checkout"
    spaced.mkdir()
    proc = _run_vm(pytester, f"--rootdir={spaced}", cwd=spaced)
    assert proc.returncode == 4
    assert f"'{spaced}/pktgen-results' has characters the VM lab cannot pass to virtme-ng " \
           "(' ')" in proc.stderr


def test_bad_option_values(pytester):
    proc = _run_vm(pytester, "--pktgen-vm-cpus", "0")
    assert proc.returncode == 4 and "not a whole number of 1 or more" in proc.stderr
    pytester.makeini("[pytest]\npktgen_vm_memory = lots\n")
    proc = _run_vm(pytester)
    assert proc.returncode == 4
    assert "ini key pktgen_vm_memory = 'lots'" in proc.stderr


def test_options_are_documented(pytester):
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    for flag in ("--pktgen-vm ", "--pktgen-vm-kernel=PATH", "--pktgen-vm-cpus=N",
                 "--pktgen-vm-memory=SIZE", "--pktgen-vm-nics=N", "--pktgen-vm-kvm=auto|on|off",
                 "--pktgen-out=DIR"):
        assert flag in out
    assert "pktgen_vm_nics" in out  # the ini key, beside its option


def test_lab_info_roundtrip(tmp_path, monkeypatch):
    monkeypatch.delenv(vm.LAB_ENV, raising=False)
    assert vm.lab_info() is None
    info = vm.LabInfo("/boot/k", "6.1", "tcg", 2, "2G", vm.pair_macs(1), str(tmp_path / "st"))
    (tmp_path / "lab.json").write_text(info.to_json())
    monkeypatch.setenv(vm.LAB_ENV, str(tmp_path / "lab.json"))
    assert vm.lab_info() == info


def test_watchdog_stops_a_hung_boot_or_test_and_says_where(tmp_path, monkeypatch):
    progress = tmp_path / "progress"
    watch = vm.Watchdog(0, 60, progress)
    t0 = watch.started
    assert not watch.expired(t0 + 59)
    assert watch.expired(t0 + 60)
    assert watch.why == ("the guest made no progress for 60s (booting, before the first test; "
                         "--pktgen-vm-test-timeout)")
    # the guest's plugin notes each test as it starts; the clock starts again from there
    info = vm.LabInfo("/boot/k", "6.1", "tcg", 2, "2G", [], str(tmp_path / "st"), str(progress))
    (tmp_path / "lab.json").write_text(info.to_json())
    monkeypatch.setenv(vm.LAB_ENV, str(tmp_path / "lab.json"))
    vm.note_progress("tests/x.py::test_slow")
    watch = vm.Watchdog(0, 60, progress)
    noted = progress.stat().st_mtime
    assert not watch.expired(noted + 59)
    assert watch.expired(noted + 61)
    assert "no progress for 60s (in tests/x.py::test_slow;" in watch.why
    # the whole run's deadline; 0 and 0: no limit at all
    watch = vm.Watchdog(100, 0, progress)
    assert not watch.expired(watch.started + 99) and watch.expired(watch.started + 100)
    assert watch.why == "the guest ran out of time (100s)"
    assert not vm.Watchdog(0, 0, progress).expired(time.time() + 1e9)


@pytest.mark.parametrize("chunks", [
    [b"a\nqemu-system-x86_64: warning: hub 0 is not connected to host network\nb\n"],
    [b"a\nqemu-system-x86_64: warn", b"ing: hub 1 is not connected to host network\nb\n"],
    [b"a\nqemu-", b"system-x86_64: warning: hub 0 is not connected to host network\n",
     b"qemu-system-x86_64: warning: hub 1 is not connected to host network\nb\n"],
])
def test_hub_warnings_are_dropped_wherever_chunks_split(chunks):
    quiet = vm._OutputFilter()
    out = b"".join(quiet.feed(c) for c in chunks) + quiet.flush()
    assert out == b"a\nb\n"


def test_output_filter_holds_back_nothing_else():
    quiet = vm._OutputFilter()
    assert quiet.feed(b"tests/x.py ..") == b"tests/x.py .."  # progress dots stream at once
    assert quiet.feed(b"qemu-system-x86_64: error: x\n") == b"qemu-system-x86_64: error: x\n"


def test_kernel_tree_is_booted_through_kbuild_output(tmp_path):
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"")
    assert vm.kernel_args(image) == ["--run", str(image)]
    assert vm.kernel_args(tmp_path) == []  # not a bare --run: that is the host's kernel
    env = vm.tool_env(Path("/venv/bin/vng"), tmp_path)
    assert env["KBUILD_OUTPUT"] == str(tmp_path)
    assert env["PATH"].startswith("/venv/bin:")
    assert "KBUILD_OUTPUT" not in vm.tool_env(Path("/venv/bin/vng"), image)


def test_guest_command_follows_the_kernel_log_and_dumps_stacks_of_a_stalled_test():
    command = vm.guest_command(sys.executable, ["-x"], "/lab.json", "/w", "/s",
                               kernel_log="/state dir/kernel.log", dump_after=1500)
    follow = command.index("dmesg --follow > '/state dir/kernel.log' 2>&1 &")
    assert follow < command.index("-m pytest -o faulthandler_timeout=1500 -x")
    assert f"echo {vm.HUNG_TASK_REPORT_S} > /proc/sys/kernel/hung_task_timeout_secs" in command
    plain = vm.guest_command(sys.executable, ["-x"], "/lab.json", "/w", "/s")
    assert "dmesg" not in plain and "faulthandler" not in plain and "nft" not in plain
    held = vm.guest_command(sys.executable, ["-x"], "/lab.json", "/w", "/s", hold_keys=True)
    assert held.index(f"nft {shlex.quote(vm.HOLD_KEYS_NFT)} || echo") < held.index("-m pytest")


def test_log_tail(tmp_path):
    log = tmp_path / "kernel.log"
    assert vm.log_tail(log) == "pytest-pktgen VM lab: no kernel log from the guest"
    log.write_text("".join(f"[ {i}.0] line {i}\n" for i in range(100)))
    tail = vm.log_tail(log, lines=3).splitlines()
    assert tail == ["pytest-pktgen VM lab: the guest kernel's last 3 of 100 messages:",
                    "[ 97.0] line 97", "[ 98.0] line 98", "[ 99.0] line 99"]


def test_the_package_is_shared_cached_and_compiled_before_the_guest_reads_it():
    """An editable install's package lives in its checkout: shared read-only and cached like
    the venv, with every module's byte code current (the guest could write none)."""
    import importlib.util
    import struct

    assert str(vm.PACKAGE) in vm.python_trees(["/nowhere"])
    assert str(vm.PACKAGE) not in vm.python_trees([str(vm.PACKAGE / "lab")])  # written there
    vm.compile_package()
    for source in vm.PACKAGE.rglob("*.py"):
        pyc = Path(importlib.util.cache_from_source(str(source)))
        flags, mtime, size = struct.unpack("<III", pyc.read_bytes()[4:16])
        assert (flags, mtime, size) == (0, int(source.stat().st_mtime) & 0xFFFFFFFF,
                                        source.stat().st_size & 0xFFFFFFFF), source


def test_the_guest_reads_no_git_repository_and_gets_the_host_s_commit_info(tmp_path, monkeypatch):
    """pytest-benchmark runs `git describe --dirty` as it adds its options: in the guest, over
    9p, that refreshes a whole repository's index (a kernel tree's: minutes under TCG). The
    guest's git finds no repository; the host's reading of it comes in the lab file."""
    from pytest_pktgen import plugin

    command = vm.guest_command(sys.executable, [], "/lab.json", "/w", "/s", [])
    assert f"{vm.GIT_GUEST_ENV} {vm.LAB_ENV}=/lab.json" in command
    lab = vm.LabInfo("/k", "6.1", "tcg", 2, "2G", [], "/s", commit_info={"id": "abc"})
    path = tmp_path / "lab.json"
    path.write_text(lab.to_json())
    monkeypatch.setenv(vm.LAB_ENV, str(path))
    assert plugin.pytest_benchmark_generate_commit_info(None) == {"id": "abc"}
    monkeypatch.delenv(vm.LAB_ENV)
    assert plugin.pytest_benchmark_generate_commit_info(None) is None  # pytest-benchmark's own

"""The SSH hosts' agent and its channel, on this machine: the same bootstrap, zip and frames as
over SSH, the channel a child process's pipes instead of an SSH session's (the VM lab's
tests/integration/test_ssh.py runs them through real sshd)."""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
import time

import pytest

from pytest_pktgen.errors import HostError, HostLost, PktgenConfigError
from pytest_pktgen.host import agent, ssh
from pytest_pktgen.run.runner import check_ends


class PipeMachine(ssh.SshMachine):
    """The agent as a child process here, its stdin/stdout the channel."""

    async def _open(self, command: str):  # run by a shell, as sshd runs it
        return await asyncio.create_subprocess_shell(
            command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)

    def _exit_status(self):
        return self._process.returncode

    async def _ended(self) -> None:
        await self._process.wait()

    async def _hang_up(self) -> None:
        if self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


def _machine(**kwargs) -> PipeMachine:
    kwargs.setdefault("python", sys.executable)
    return PipeMachine("pipe", "ssh://root@localhost", **kwargs)


@pytest.fixture
def machine():
    if os.geteuid() != 0:
        pytest.skip("the agent's facts ask for root, as pktgen does")
    m = _machine().connect(require_pktgen=False)
    yield m
    m.close()


def test_hello_says_what_the_far_end_is(machine):
    assert machine.facts["protocol"] == agent.PROTOCOL
    assert machine.facts["python"][:2] == list(sys.version_info[:2])
    assert machine.facts["pid"] != os.getpid()
    assert machine.facts["netns_inode"] == os.stat("/proc/self/ns/net").st_ino


def test_calls_run_there_and_their_errors_come_back_as_themselves(machine):
    assert machine.call(os.getpid) == machine.facts["pid"]
    assert machine.on().read_text("/proc/self/stat").split()[0] == str(machine.facts["pid"])
    done = machine.on().run(["sh", "-c", "echo $PPID"], capture_output=True, text=True)
    assert int(done.stdout) == machine.facts["pid"]
    with pytest.raises(PktgenConfigError) as caught:
        machine.call(check_ends, 0, None, "eth1")  # count 0 without a duration
    assert caught.value.param == "count" and caught.value.device == "eth1"
    assert "(raised on host pipe)" in caught.value.__notes__
    with pytest.raises(FileNotFoundError):
        machine.on().read_text("/nonexistent/file")


def _here_only():  # a test module's function: there is no such module there
    return 1


def test_what_cannot_travel_is_refused_here_or_fails_that_call_alone(machine):
    with pytest.raises(ValueError, match="host pipe: .*cannot be sent.*module-level"):
        machine.call(lambda: 1)
    with pytest.raises(ModuleNotFoundError, match=_here_only.__module__.split(".")[0]):
        machine.call(_here_only)
    assert machine.call(os.getpid) == machine.facts["pid"]  # the channel is fine


def test_calls_from_several_threads_wait_on_their_own_replies(machine):
    """A blocking call (pgctrl start) must not hold up the others."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = pool.submit(machine.call, time.sleep, 1.5)
        t0 = time.monotonic()
        quick = [pool.submit(machine.call, os.getpid) for _ in range(3)]
        assert {f.result() for f in quick} == {machine.facts["pid"]}
        assert time.monotonic() - t0 < 1.0, "quick calls waited for the slow one"
        assert slow.result() is None


def test_kept_objects_answer_attributes_and_methods_and_are_undone(machine):
    obj = machine.new(agent.Ref, 7, "seven")  # any class importable there will do
    assert obj.key == 7 and obj.kind == "seven"
    assert obj.__repr__().startswith("<Ref #")
    obj.close()
    with pytest.raises(LookupError, match="keeps no Ref"):
        obj.key  # noqa: B018
    assert obj.closed is True  # what a closed object still says: that it is closed
    obj.close()  # again: nothing to do, nothing asked there


def test_a_lost_channel_fails_pending_calls_with_host_lost_naming_the_host(machine):
    import threading

    result = {}

    def wait_long():
        try:
            machine.call(time.sleep, 30)
        except BaseException as err:  # noqa: BLE001
            result["err"] = err

    t = threading.Thread(target=wait_long)
    t.start()
    time.sleep(0.3)
    machine.sever()
    t.join(10)
    assert isinstance(result.get("err"), HostLost)
    assert "host pipe: the connection to ssh://root@localhost was lost" in str(result["err"])
    with pytest.raises(HostLost):
        machine.call(os.getpid)


def test_the_agent_undoes_what_it_keeps_when_its_channel_goes_silent():
    """No frame for loss_after seconds (a cut cable, no EOF): the agent cleans up by itself."""
    if os.geteuid() != 0:
        pytest.skip("root")
    m = _machine(loss_after=1.5).connect(require_pktgen=False)
    marker = m.new(agent.Ref, 1, "x")  # kept there; cleanup below is logged on its stderr
    assert marker.key == 1
    pid = m.facts["pid"]
    ssh._event_loop().call_soon_threadsafe(_stop_heartbeat, m)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    silent_for = time.monotonic() - (deadline - 10)
    assert not _alive(pid), "the agent outlived its silent channel"
    assert silent_for < 1.5 + 3, silent_for
    time.sleep(0.3)
    assert any("nothing heard for 1.5s: the controller is lost" in line for line in m.agent_said), \
        m.agent_said
    m.close()


def _stop_heartbeat(m):
    for task in m._tasks[2:]:
        task.cancel()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_missing_python_is_named_with_the_host():
    with pytest.raises(HostError, match=r"host pipe: /nonexistent/python3 is missing there"):
        _machine(python="/nonexistent/python3").connect(require_pktgen=False)


def test_the_payload_holds_this_package_and_pyroute2_and_unpickles_frames():
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(ssh.payload())).namelist()
    assert "pytest_pktgen/host/agent.py" in names and "pyroute2/iproute/linux.py" in names
    assert not [n for n in names if "__pycache__" in n]
    stream = io.BytesIO(agent.frame(pickle.dumps(("ping", 0, None))))
    trickle = lambda n: stream.read(min(n, 3))  # noqa: E731 - a pipe giving 3 bytes at a time
    assert pickle.loads(agent.read_frame(trickle)) == ("ping", 0, None)
    assert agent.read_frame(trickle) is None  # EOF


@pytest.mark.parametrize("url, parsed", [
    ("ssh://root@lab-gen1", ("root", "lab-gen1", None)),
    ("ssh://lab-gen1:2222", (None, "lab-gen1", 2222)),
    ("root@198.18.0.1", ("root", "198.18.0.1", None)),
    ("gen1", (None, "gen1", None)),
])
def test_ssh_addresses(url, parsed):
    assert ssh.parse_url(url) == parsed


@pytest.mark.parametrize("url", ["http://lab", "ssh://", "ssh://a:b", "ssh://u:pw@host",
                                 "ssh://host/path", "ssh://host?x=1"])
def test_bad_ssh_addresses_say_what_is_allowed(url):
    with pytest.raises(ValueError, match=r"ssh://\[user@\]host\[:port\]"):
        ssh.parse_url(url)


@pytest.mark.parametrize("name", ["", "1gen", "gen 1", "gen:1", "a" * 33])
def test_bad_host_names(name):
    with pytest.raises(ValueError, match="host name"):
        ssh.check_host_name(name)


def test_replies_hold_data_only_and_a_refused_one_fails_its_call_alone(machine):
    """A reply naming a function (pickle's REDUCE on operator.itemgetter) is refused here: a
    compromised host cannot make the controller call what it likes."""
    import operator

    with pytest.raises(HostError, match="host pipe: its reply was refused: a reply may not "
                                        "hold operator.itemgetter"):
        machine.call(operator.itemgetter, 0)
    with machine.on().netlink() as ipr:  # pyroute2's messages are data
        names = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    assert "lo" in names
    assert isinstance(machine.call(os.stat, "/"), os.stat_result)


def test_a_crafted_reply_imports_nothing_and_ends_no_session(tmp_path, monkeypatch, machine):
    """A reply naming a module this machine has but has not loaded is refused before the
    import (its import-time code would run here, as root); SystemExit and KeyboardInterrupt
    are refused (call() would raise them into the session), and a call that raises one there
    comes back as a RemoteError."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_reply.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Thing(Exception):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for crafted in (b"cevil_reply\nThing\n.", b"cpytest_pktgen.evil\nThing\n.",
                    pickle.dumps(SystemExit(3)), pickle.dumps(KeyboardInterrupt()),
                    pickle.dumps(GeneratorExit())):
        with pytest.raises(pickle.UnpicklingError, match="a reply may not hold"):
            ssh._loads(crafted)
    assert not marker.exists() and "evil_reply" not in sys.modules
    for value in (ValueError("x"), FileNotFoundError(2, "gone"), HostError("h", "p")):
        assert type(ssh._loads(pickle.dumps(value))) is type(value)  # errors still travel
    with pytest.raises(agent.RemoteError, match="SystemExit"):
        machine.call(sys.exit, 3)
    assert machine.call(os.getpid) == machine.facts["pid"]  # the channel stays up


def test_a_silent_agent_is_lost_within_its_loss_timeout_and_a_waiting_call_ends():
    """No EOF, no reset: the agent stops answering (SIGSTOP: a hung host, a black-holed
    link). A call waiting on it fails with HostLost within loss_after and a beat or two, not
    when TCP gives up (~15 minutes); the connection is dropped, and closing does not hang."""
    import signal
    import threading

    if os.geteuid() != 0:
        pytest.skip("the agent's facts ask for root, as pktgen does")
    m = _machine(loss_after=2.0).connect(require_pktgen=False)
    pid = m.facts["pid"]
    try:
        time.sleep(3)  # quiet but alive: its pings keep it found
        assert m.call(os.getpid) == pid
        ended: list = []
        waiter = threading.Thread(target=lambda: ended.append(_raised(m.call, time.sleep, 60)))
        waiter.start()
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        waiter.join(15)
        took = time.monotonic() - started
        assert ended and isinstance(ended[0], HostLost), ended
        assert "nothing heard from ssh://root@localhost for 2s: the network is silent" in str(
            ended[0])
        assert took < 2.0 + 3 * ssh.HEARTBEAT_S, took
        with pytest.raises(HostLost):
            m.call(os.getpid)
        closing = time.monotonic()
        m.close()
        assert time.monotonic() - closing < 5
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _raised(fn, *args):
    try:
        fn(*args)
    except BaseException as err:  # noqa: BLE001
        return err
    return None


def test_the_clock_offset_of_a_machine_whose_answer_is_known(machine):
    """The agent here reads this machine's own CLOCK_MONOTONIC: the true offset is 0, and
    it must lie within the measured uncertainty (half the quickest round trip)."""
    found = machine.clock_offset()
    assert abs(found.offset_ns) <= found.uncertainty_ns, found
    assert 0 < found.uncertainty_ns < 50_000_000  # a round trip through a pipe: well under
    assert found.here_ns(found.offset_ns + 123) == 123


def test_a_host_without_pktgen_is_refused_naming_it():
    """This machine's kernel has no pktgen (nor modules): as a host, it is refused at connect,
    before anything is started there."""
    from pathlib import Path

    if os.geteuid() != 0:
        pytest.skip("the agent's facts ask for root first")
    modules = Path("/lib/modules") / os.uname().release
    if Path("/proc/net/pktgen").exists() or list(modules.glob("kernel/net/core/pktgen.ko*")):
        pytest.skip("this machine's kernel has pktgen: the refusal needs one without")
    with pytest.raises(HostError, match=r"host pipe: its kernel .* has no pktgen \(no "
                                        r"/proc/net/pktgen and no pktgen.ko"):
        _machine().connect()

"""The far end of an SSH host: this package's own code, run by ``python3`` on that machine.

The controller (:mod:`pytest_pktgen.host.ssh`) starts ``python3 -c BOOTSTRAP`` over an SSH
channel and sends this package (and pyroute2) as a zip on its stdin: nothing is installed
there, nothing listens on a port, and the code that runs there is the code that runs here.
Then both ends exchange frames on that channel: a 4-byte big-endian length and a pickle.

    controller -> agent   ("call", id, pickle of (fn, args, kwargs))   run on a thread
                          ("ping", 0, ...)                  I am still here (every second)
                          ("bye", 0, ...)                   done: undo what is left, exit
    agent -> controller   ("hello", 0, pickle of facts)     once, at the start
                          ("ok" or "err", id, pickle of the value or the exception)
                          ("ping", 0, ...)                  I am still here (every second)

Each end takes the other for lost after ``loss_after`` seconds without a byte from it (a
large frame on a slow link feeds the watch as its bytes come, not only once it is whole).

A callable is sent by reference (module and name), so only module-level functions of this
package (or the standard library) cross; objects that must stay there (a run, a netlink
socket, a namespace's resident thread) are kept in a table and reached through a
:class:`Ref` (:func:`new`, :func:`invoke`, :func:`attribute`).

When the channel goes (EOF: the controller died, its SSH connection broke; or no frame for
``loss_after`` seconds: a silent network) the agent undoes what it holds, newest first: every
kept object's ``cleanup()`` and ``close()`` (a run stops its pktgen devices and removes them),
then what its ledger lists (namespaces, links, NICs moved). A SIGKILLed agent leaves its
ledger for the next session's cleaner on that machine, as any other process does.
"""

from __future__ import annotations

import inspect
import itertools
import os
import pickle
import platform
import signal
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import cpu, seam, undo
from .ledger import ledger

FRAME = struct.Struct(">I")
LOSS_AFTER_S = 5.0  # no frame for this long (pings come every second): the controller is gone
PROTOCOL = 2  # bumped when the frames change: a mismatch is refused at hello
HEARTBEAT_S = 1.0  # each end pings the other this often
CHUNK = 1 << 16  # a frame is read this much at a time, each chunk heard as a sign of life


def read_frame(read) -> bytes | None:
    """One frame's payload from ``read(n)`` (a file's read), or None at EOF."""
    head = _read_exactly(read, FRAME.size)
    if head is None:
        return None
    return _read_exactly(read, FRAME.unpack(head)[0])


def _read_exactly(read, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload)) + payload


@dataclass(frozen=True)
class Ref:
    """An object kept by the agent, named by its key in the table."""

    key: int
    kind: str  # its class's name, for messages


class RemoteError(Exception):
    """An exception from the far end that could not travel as itself: its type, its text and
    its traceback there."""

    def __init__(self, kind: str, text: str, where: str = ""):
        self.kind, self.text, self.where = kind, text, where
        super().__init__(kind, text, where)

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


# --- the table of kept objects (in the agent's process only) --------------------------------
_objects: dict[int, object] = {}
_serial = itertools.count(1)
_table_lock = threading.Lock()


def new(factory, args: tuple = (), kwargs: dict | None = None) -> Ref:
    """``factory(*args, **kwargs)`` made and kept here; a Ref to it goes back."""
    obj = factory(*_resolve(args), **_resolve(kwargs or {}))
    return keep(obj)


def keep(obj) -> Ref:
    with _table_lock:
        key = next(_serial)
        _objects[key] = obj
    return Ref(key, type(obj).__name__)


def invoke(ref: Ref, name: str, args: tuple = (), kwargs: dict | None = None):
    """A kept object's method called with these arguments (Refs among them resolved); a
    generator's items as a list."""
    value = getattr(_get(ref), name)(*_resolve(args), **_resolve(kwargs or {}))
    return list(value) if inspect.isgenerator(value) else value


def attribute(ref: Ref, name: str) -> tuple[str, object]:
    """("method", None) for a method (anything callable), else ("value", its value now)."""
    value = getattr(_get(ref), name)
    return ("method", None) if callable(value) else ("value", value)


def drop(ref: Ref, close: bool = True) -> None:
    """Forget a kept object (its ``close()`` called first, if it has one and ``close``)."""
    with _table_lock:
        obj = _objects.pop(ref.key, None)
    if close and obj is not None and callable(getattr(obj, "close", None)):
        obj.close()


def _get(ref: Ref):
    try:
        return _objects[ref.key]
    except KeyError:
        raise LookupError(f"the agent keeps no {ref.kind} #{ref.key} (dropped already?)") from None


def _resolve(value):
    if isinstance(value, Ref):
        return _get(value)
    if isinstance(value, tuple):
        return tuple(_resolve(v) for v in value)
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value


def on_place(netns: str | None, method: str, *args, **kwargs):
    """A Host of this machine's seam for a namespace: its method called (``read_text``,
    ``call``, ``run``, ...) or its property read (``exists``)."""
    value = getattr(seam.on(netns), method)
    return value(*args, **kwargs) if callable(value) else value


def netlink_on(netns: str | None):
    """An IPRoute bound to a namespace of this machine (to keep, with :func:`new`)."""
    return seam.on(netns).netlink()


def facts() -> dict:
    """What the controller checks before it uses this machine."""
    release = platform.release()
    modules = Path("/lib/modules") / release
    built_in = modules / "modules.builtin"
    return {
        "protocol": PROTOCOL,
        "cpu": cpu.model(cpu.cpuinfo()),
        "cpus": os.cpu_count(),
        "python": list(sys.version_info[:3]),
        "kernel": release,
        "euid": os.geteuid(),
        "pid": os.getpid(),
        "hostname": platform.node(),
        "netns_inode": os.stat("/proc/self/ns/net").st_ino,
        "pktgen_loaded": Path("/proc/net/pktgen").exists(),
        "pktgen_module": any(modules.glob("kernel/net/core/pktgen.ko*"))
        or (built_in.exists() and "net/core/pktgen.ko" in built_in.read_text()),
    }


def undo_all(say=None) -> list[str]:
    """Everything kept, newest first: ``cleanup()`` (a run: stop, remove its devices) and
    ``close()``; then what this process's ledger lists. One line per thing undone or failed."""
    said = []
    with _table_lock:
        kept = sorted(_objects.items(), reverse=True)
        _objects.clear()
    for key, obj in kept:
        for step in ("cleanup", "close"):
            fn = getattr(obj, step, None)
            if not callable(fn):
                continue
            try:
                fn()
                said.append(f"{step} {type(obj).__name__} #{key}")
            except Exception as err:  # noqa: BLE001 - the rest must still be undone
                said.append(f"{step} {type(obj).__name__} #{key} failed: {err}")
    own = ledger()
    done, failed, left = undo.undo_record(dict(own.record))
    own.keep_only(left)  # for the next session's cleaner on this machine
    said += done + failed
    if say:
        for line in said:
            say(line)
    return said


# --- the loop ----------------------------------------------------------------------------------
class _Channel:
    def __init__(self, read, out_fd: int):
        self.read = read
        self.out_fd = out_fd
        self.lock = threading.Lock()

    def send(self, kind: str, rid: int, value) -> None:
        try:  # the value pickled apart: the controller may refuse it without losing the frame
            body = pickle.dumps(value)
        except Exception as err:  # noqa: BLE001 - an unpicklable value or exception
            kind, body = "err", pickle.dumps(_portable(value if kind == "err" else err, err))
        payload = pickle.dumps((kind, rid, body))
        data = frame(payload)
        with self.lock:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self.out_fd, view):]
                except BrokenPipeError:
                    return  # the controller is gone; the reader sees EOF


def _portable(exc: BaseException, why: Exception | None = None) -> BaseException:
    """The exception itself if it survives a round trip through pickle, else a RemoteError;
    a RemoteError too for what is not an ``Exception`` (SystemExit, KeyboardInterrupt): the
    controller refuses those (raised there, they would end its session)."""
    if why is None and not isinstance(exc, Exception):
        why = TypeError(f"{type(exc).__name__} is not an Exception")
    if why is None:
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception as err:  # noqa: BLE001
            why = err
    where = "".join(traceback.format_exception(exc)) if isinstance(exc, BaseException) else ""
    return RemoteError(type(exc).__name__, str(exc), where)


def _serve(channel: _Channel, rid: int, body: bytes) -> None:
    try:  # unpickled here: a function this side cannot import fails this call alone
        fn, args, kwargs = pickle.loads(body)
        value = fn(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001 - sent back
        channel.send("err", rid, _portable(err))
        return
    channel.send("ok", rid, value)


def main(loss_after: float = LOSS_AFTER_S) -> None:
    """Serve the controller on stdin/stdout until it says bye or is lost; undo, exit."""
    stdin = sys.stdin.buffer
    last = [time.monotonic()]

    def read(n: int) -> bytes:  # whatever has come, up to a chunk: each one heard
        chunk = stdin.read1(min(n, CHUNK))
        last[0] = time.monotonic()
        return chunk

    out_fd = os.dup(1)  # frames go here; anything printed goes to stderr, not into a frame
    os.dup2(2, 1)
    channel = _Channel(read, out_fd)
    done = threading.Event()
    said = []

    def watchdog():
        while not done.wait(0.5):
            if time.monotonic() - last[0] > loss_after:
                said.append(f"nothing heard for {loss_after:g}s: the controller is lost")
                done.set()

    def pinger():  # a thread of its own: a ping may wait behind a large reply's write
        while not done.wait(HEARTBEAT_S):
            channel.send("ping", 0, None)

    def reader():
        while True:
            payload = read_frame(read)
            if payload is None:
                said.append("the channel closed: the controller is gone")
                break
            last[0] = time.monotonic()
            kind, rid, *rest = pickle.loads(payload)
            if kind == "bye":
                break
            if kind == "call":
                threading.Thread(target=_serve, args=(channel, rid, rest[0]),
                                 name=f"call-{rid}", daemon=True).start()
        done.set()

    def lose(signum, frame):  # sshd's SIGHUP, a SIGTERM: undo as for a lost channel
        said.append(f"{signal.Signals(signum).name}: ending")
        done.set()

    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, lose)
    channel.send("hello", 0, facts())
    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()
    threading.Thread(target=pinger, name="pinger", daemon=True).start()
    threading.Thread(target=reader, name="reader", daemon=True).start()
    while not done.wait(1.0):  # a timeout: signals are handled between waits
        pass
    for line in said:
        _say(line)
    undo_all(lambda line: _say(f"undid {line}"))
    os._exit(0)  # call threads may still block in the kernel; nothing of theirs is needed


def _say(line: str) -> None:
    """A line on stderr (the controller's, while the channel lasts); a gone channel is no
    reason to stop undoing."""
    try:
        print(f"pytest-pktgen agent {os.getpid()}: {line}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()

"""Machines reached over SSH: the Host seam's third implementation.

``SshMachine("gen1", "ssh://root@lab-gen1").connect()`` opens an SSH connection (asyncssh:
OpenSSH's config file with its Host aliases, HostName, Port, User, IdentityFile and ProxyJump,
the agent, known_hosts, all honoured), starts ``python3`` there and sends it this package and
pyroute2 as a zip on the channel (:mod:`pytest_pktgen.host.agent`): the far end needs sshd and
python3 (3.11 or newer), nothing installed, no port of its own. ``machine.on(netns)`` is a
:class:`Remote` Host for that machine's own namespace (None) or a named one there.

Why asyncssh: it is maintained, pure Python over ``cryptography`` (a wheel), reads OpenSSH's
client config (ProxyJump included) and agent, and is asynchronous, so one event loop (a thread
of its own here) drives every host's channel at once: the heartbeats that keep each agent
alive, the replies of calls made from several threads, one stop sent to all generators
together. paramiko is synchronous (a thread per channel, no ProxyJump of its own); Fabric and
the ``ssh`` binary through subprocess give no channel to multiplex.

The agent undoes what it holds when the channel closes or goes silent for ``loss_after``
seconds; the controller sends a ping every second and fails every pending call with
:class:`~pytest_pktgen.errors.HostLost` when the channel goes.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import dataclasses
import functools
import importlib.util
import io
import itertools
import pickle
import re
import shlex
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from ..errors import HostError, HostLost
from . import agent, clock, netlink

T = TypeVar("T")

HEARTBEAT_S = agent.HEARTBEAT_S
CONNECT_TIMEOUT_S = 20.0
HELLO_TIMEOUT_S = 120.0  # python3 starting and importing the package (seconds under TCG)
PYTHON_MIN = (3, 11)
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")

# python3 -c BOOTSTRAP LOSS_AFTER: the zip arrives as one frame on stdin, is kept in a memfd
# (nothing written to the far end's disk) and imported from there.
BOOTSTRAP = """\
import os, struct, sys
if sys.version_info < MIN:
    sys.stderr.write("pytest-pktgen: python3 there is %d.%d; the agent needs NEED\\n"
                     % sys.version_info[:2])
    sys.exit(3)
r = sys.stdin.buffer
n, = struct.unpack(">I", r.read(4))
f = os.memfd_create("pytest-pktgen.zip")
d = memoryview(r.read(n))
while d:
    d = d[os.write(f, d):]
sys.path.insert(0, "/proc/self/fd/%d" % f)
from pytest_pktgen.host import agent
agent.main(float(sys.argv[1]))
""".replace("MIN", repr(PYTHON_MIN)).replace("NEED", ".".join(map(str, PYTHON_MIN)))


def check_host_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"host name {name!r}: a letter, then letters, digits, - or _ "
                         "(at most 32), as in gen1 or dut")
    return name


def parse_url(url: str) -> tuple[str | None, str, int | None]:
    """``ssh://[user@]host[:port]`` (or ``[user@]host``: an OpenSSH config alias works) as
    (user, host, port); a ValueError saying what is allowed."""
    text = url if "://" in url else f"ssh://{url}"
    parts = urlsplit(text)
    allowed = "ssh://[user@]host[:port] (host may be an alias of your ~/.ssh/config)"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"SSH address {url!r}: the port is not a number; {allowed}") from None
    if parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.password:
        raise ValueError(f"SSH address {url!r} is not allowed; {allowed}")
    return parts.username, parts.hostname, port


# --- what a reply may hold ---------------------------------------------------------------------
# A reply is unpickled here, so what it may name is held to data: plain types, exceptions,
# paths, dataclasses of this package, pyroute2's messages. A compromised host cannot make the
# controller call a function (pickle's REDUCE) beyond building such values.
_SAFE_BUILTINS = frozenset({"set", "frozenset", "bytearray", "complex", "range", "slice",
                            "object", "bool", "int", "float", "str", "bytes", "list", "tuple",
                            "dict"})
_SAFE = {("collections", "OrderedDict"), ("collections", "defaultdict"),
         ("collections", "deque"), ("pathlib", "PosixPath"), ("pathlib", "Path"),
         ("subprocess", "CompletedProcess"), ("pytest_pktgen.errors", "_rebuild"),
         ("os", "stat_result"),
         ("datetime", "datetime"), ("datetime", "timedelta"), ("datetime", "timezone")}


class _Unpickler(pickle.Unpickler):
    """Refuses by name before anything is imported: a reply names a module and a class, and
    pickle's own lookup imports the module first, so a host could run any module's
    import-time code here, as root. A reply may import only the standard library's modules of
    ``_SAFE`` and modules of this package and of pyroute2 (the two the agent runs from: their
    import-time code is what is installed here, never the host's); any other module is
    refused by its name. Exceptions: subclasses of ``Exception`` only (never SystemExit,
    KeyboardInterrupt or GeneratorExit, which ``call()`` would raise into the session)."""

    def find_class(self, module: str, name: str):
        if module == "builtins":
            value = getattr(builtins, name, None)
            if name in _SAFE_BUILTINS or _is_error(value):
                return value
        elif (module, name) in _SAFE:
            return super().find_class(module, name)
        elif module.startswith(("pytest_pktgen.", "pyroute2.")):
            try:
                value = _attribute(importlib.import_module(module), name)
            except ImportError:
                value = None
            if isinstance(value, type) and (
                    _is_error(value)
                    or (module.startswith("pytest_pktgen.") and dataclasses.is_dataclass(value))
                    or (module.startswith("pyroute2.")
                        and issubclass(value, (dict, list, tuple)))):
                return value
        raise pickle.UnpicklingError(f"a reply may not hold {module}.{name}")


def _attribute(module, name: str):
    try:
        return functools.reduce(getattr, name.split("."), module)
    except AttributeError:
        return None


def _is_error(value) -> bool:
    return isinstance(value, type) and issubclass(value, Exception)


def _loads(data: bytes):
    return _Unpickler(io.BytesIO(data)).load()


# --- one event loop for every SSH connection ---------------------------------------------------
_loop: asyncio.AbstractEventLoop | None = None
_loop_guard = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_guard:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="ssh-loop", daemon=True).start()
        return _loop


def _run(coro, timeout: float | None = None):
    return asyncio.run_coroutine_threadsafe(coro, _event_loop()).result(timeout)


_payload: bytes | None = None


def payload() -> bytes:
    """This package and pyroute2 as one zip, made once per process: their sources, and
    beside each the bytecode this Python compiled of it, where it has it and it is current
    (as an unchecked hash-based pyc: a Python there with the same bytecode loads it instead of
    compiling the source, seconds under TCG; another one compiles the source)."""
    global _payload
    if _payload is None:
        pyroute2 = importlib.util.find_spec("pyroute2").submodule_search_locations[0]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for package in (Path(agent.__file__).parents[1], Path(pyroute2)):
                for path in sorted(package.rglob("*.py")):
                    if "__pycache__" in path.parts:
                        continue
                    name = path.relative_to(package.parent).as_posix()
                    source = path.read_bytes()
                    zf.writestr(name, source)
                    compiled = _bytecode(path, source)
                    if compiled is not None:
                        zf.writestr(name + "c", compiled)
        _payload = buf.getvalue()
    return _payload


def _bytecode(path: Path, source: bytes) -> bytes | None:
    """This Python's cached bytecode of ``path`` if it is of this very source, as an
    unchecked hash-based pyc (PEP 552); None if there is none that is current."""
    try:
        data = Path(importlib.util.cache_from_source(str(path))).read_bytes()
        stat = path.stat()
    except (OSError, NotImplementedError):
        return None
    if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER:
        return None
    flags = int.from_bytes(data[4:8], "little")
    source_hash = importlib.util.source_hash(source)
    if flags == 0:  # stamped with the source's mtime and size
        if (int.from_bytes(data[8:12], "little") != int(stat.st_mtime) & 0xFFFFFFFF
                or int.from_bytes(data[12:16], "little") != len(source) & 0xFFFFFFFF):
            return None
    elif data[8:16] != source_hash:
        return None
    return importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + source_hash + data[16:]


class SshMachine:
    """One machine over SSH, its agent running there; :meth:`on` gives its Hosts."""

    def __init__(self, name: str, url: str, *, known_hosts=(), client_keys=(), config=(),
                 connect_timeout: float = CONNECT_TIMEOUT_S,
                 loss_after: float = agent.LOSS_AFTER_S, python: str = "python3"):
        self.name = check_host_name(name)
        self.url = url
        self.user, self.address, self.port = parse_url(url)
        self._options = {"known_hosts": known_hosts, "client_keys": client_keys,
                         "config": config, "connect_timeout": connect_timeout}
        self.loss_after = loss_after
        self.python = python
        self.facts: dict = {}
        self._conn = None
        self._process = None
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future] = {}
        self._lost: str | None = None
        self._heard = 0  # chunks read from the agent so far: its signs of life
        self._stderr: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._kinds: dict[tuple[str, str], str] = {}
        # run by close() while the connection is up, newest first (what a session set up
        # there that outlives a test: a module it loaded)
        self.before_close: list[Callable[[], object]] = []

    def __repr__(self) -> str:
        return f"SshMachine({self.name!r}, {self.url!r})"

    # --- connecting --------------------------------------------------------------------------
    def connect(self, require_pktgen: bool = True) -> SshMachine:
        """Connect, start the agent, check what it reports (root; pktgen there, unless not
        ``require_pktgen``); a HostError naming this host for anything that stops it being
        used (nothing is started there then)."""
        try:
            _run(self._connect(), HELLO_TIMEOUT_S + CONNECT_TIMEOUT_S)
        except HostError:
            self.close()
            raise
        except concurrent.futures.TimeoutError:
            self.close()
            raise HostError(self.name, f"{self.url}: no answer from python3 there within "
                            f"{HELLO_TIMEOUT_S:.0f}s of connecting") from None
        problem = self._check_facts(require_pktgen)
        if problem:
            self.close()
            raise HostError(self.name, problem)
        return self

    async def _open(self, command: str):
        """The SSH connection and a process running ``command`` there (its stdin, stdout,
        stderr and ``exit_status``)."""
        import asyncssh

        kwargs = {k: v for k, v in self._options.items() if v != ()}
        if self.user:
            kwargs["username"] = self.user
        if self.port:
            kwargs["port"] = self.port
        try:
            self._conn = await asyncssh.connect(self.address, **kwargs)
        except asyncssh.PermissionDenied as err:
            raise HostError(self.name, f"{self.url} refused our keys ({err.reason}): is the "
                            "key in the agent or named in ~/.ssh/config, and its public half in "
                            "the user's authorized_keys there?") from None
        except asyncssh.HostKeyNotVerifiable as err:
            raise HostError(self.name, f"{self.url}'s host key is not trusted ({err.reason}): "
                            "add it to the known_hosts file your SSH config names "
                            "(UserKnownHostsFile; ~/.ssh/known_hosts where it names none: ssh "
                            "to it once by hand with that config), or name a file with "
                            "--pktgen-ssh-known-hosts") from None
        except asyncssh.Error as err:
            raise HostError(self.name, f"{self.url}: SSH failed: {err.reason}") from None
        except (TimeoutError, OSError) as err:
            text = getattr(err, "strerror", None) or str(err) or type(err).__name__
            raise HostError(self.name, f"cannot reach {self.url}: {text}") from None
        return await self._conn.create_process(command, encoding=None)

    def _exit_status(self) -> int | None:
        return self._process.exit_status

    async def _connect(self) -> None:
        # exec: the agent takes the login shell's place (one process, its signals its own)
        command = (f"exec {shlex.quote(self.python)} -c {shlex.quote(BOOTSTRAP)} "
                   f"{self.loss_after!r}")
        self._process = await self._open(command)
        self._process.stdin.write(agent.frame(payload()))
        stderr = asyncio.ensure_future(self._read_stderr())
        try:
            kind, _, body = await asyncio.wait_for(self._read_message(), HELLO_TIMEOUT_S)
            facts = _loads(body)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                pickle.UnpicklingError, ValueError):
            await asyncio.sleep(0.2)  # its last words on stderr
            status = self._exit_status()
            said = " ".join(self._stderr).strip()
            if status == 127 or "not found" in said:
                problem = f"{self.python} is missing there ({said or f'exit status {status}'})"
            else:
                problem = (f"the agent did not start there (exit status {status}): "
                           f"{said[-800:] or 'nothing said'}")
            raise HostError(self.name, problem) from None
        if kind != "hello":
            raise HostError(self.name, f"the agent said {kind!r} instead of hello")
        self.facts = facts
        self._tasks = [stderr, asyncio.ensure_future(self._read_replies()),
                       asyncio.ensure_future(self._heartbeat())]

    def _check_facts(self, require_pktgen: bool) -> str:
        f = self.facts
        if f.get("protocol") != agent.PROTOCOL:
            return f"its agent speaks protocol {f.get('protocol')}, this one {agent.PROTOCOL}"
        if f.get("euid") != 0:
            return (f"logged in as uid {f.get('euid')}: pktgen, namespaces and NIC changes "
                    "need root there (ssh://root@...)")
        if require_pktgen and not (f.get("pktgen_loaded") or f.get("pktgen_module")):
            return (f"its kernel {f.get('kernel')} has no pktgen (no /proc/net/pktgen and no "
                    "pktgen.ko under /lib/modules): install the distribution's full kernel "
                    "modules package there")
        return ""

    # --- the channel -------------------------------------------------------------------------
    async def _read_message(self) -> tuple[str, int, bytes]:
        head = await self._read_exactly(agent.FRAME.size)
        frame = _loads(await self._read_exactly(agent.FRAME.unpack(head)[0]))
        if not (isinstance(frame, tuple) and len(frame) == 3 and isinstance(frame[2], bytes)):
            raise ValueError("a frame that is not (kind, id, body)")
        return frame

    async def _read_exactly(self, size: int) -> bytes:
        """``size`` bytes of the agent's stdout, a chunk at a time, each heard as a sign of
        life (a large reply on a slow link is not silence); IncompleteReadError at EOF."""
        chunks, left = [], size
        while left:
            chunk = await self._process.stdout.read(min(left, agent.CHUNK))
            if not chunk:
                raise asyncio.IncompleteReadError(b"".join(chunks), size)
            self._heard += 1
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    async def _read_stderr(self) -> None:
        try:
            while True:
                line = await self._process.stderr.readline()
                if not line:
                    return
                self._stderr = (self._stderr + [line.decode(errors="replace").rstrip()])[-50:]
        except Exception:  # noqa: BLE001 - the channel went; _read_replies says so
            return

    async def _read_replies(self) -> None:
        try:
            while True:
                kind, rid, body = await self._read_message()
                future = self._pending.pop(rid, None)
                if future is None or future.done():
                    continue
                try:
                    future.set_result((kind, _loads(body)))
                except Exception as err:  # noqa: BLE001 - refused: that call fails alone
                    future.set_exception(HostError(self.name, f"its reply was refused: {err}"))
        except Exception as err:  # noqa: BLE001 - every way the channel can end
            self._lose(f"the connection to {self.url} was lost "
                       f"({type(err).__name__}{': ' + str(err) if str(err) else ''})")

    async def _heartbeat(self) -> None:
        """A ping a second to the agent; and silence noticed as fast as the agent notices
        it: nothing heard from it for ``loss_after`` seconds (its pings come every second)
        and the host is lost, every pending call fails with HostLost, the connection is
        dropped (a black-holed network would hold a call until TCP gives up: ~15 minutes).
        Silence is counted in this loop's own beats, not by the clock: a controller busy for
        seconds elsewhere (the GIL held by an import) delays its beats and its reading alike,
        and is not taken for a silent agent."""
        heard, quiet = -1, 0
        while self._lost is None:
            try:
                self._process.stdin.write(agent.frame(pickle.dumps(("ping", 0, None))))
            except Exception as err:  # noqa: BLE001
                self._lose(f"the connection to {self.url} was lost ({err})")
                return
            await asyncio.sleep(HEARTBEAT_S)
            heard, quiet = self._heard, (quiet + 1 if self._heard == heard else 0)
            if quiet * HEARTBEAT_S > self.loss_after:
                self._lose(f"nothing heard from {self.url} for {self.loss_after:g}s: the "
                           "network is silent (a link down, the host hung)")
                self._drop()
                return

    def _drop(self) -> None:
        """The connection dropped here, no goodbye (the agent undoes by its own watch)."""
        if self._conn is not None:
            self._conn.abort()
        elif self._process is not None:  # a channel without SSH (tests): its pipes killed
            self._process.kill()

    def _lose(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(HostLost(self.name, self._lost))

    @property
    def connected(self) -> bool:
        """Whether calls can go there now."""
        return self._process is not None and self._lost is None

    @property
    def lost(self) -> str | None:
        """Why the channel went (None: it is up)."""
        return self._lost

    @property
    def agent_said(self) -> list[str]:
        """The agent's last lines on stderr."""
        return list(self._stderr)

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)`` run by the agent there; its value, or its exception raised
        here (a HostLost if the connection goes meanwhile)."""
        try:
            body = pickle.dumps((fn, args, kwargs))
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            raise ValueError(f"host {self.name}: {fn!r} with these arguments cannot be sent "
                             f"({err}): only module-level functions of pytest_pktgen or the "
                             "standard library, and plain values, travel") from None
        if self._process is None:
            raise HostError(self.name, "not connected")
        if self._lost:
            raise HostLost(self.name, self._lost)
        rid = next(self._ids)
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._pending[rid] = future
        data = agent.frame(pickle.dumps(("call", rid, body)))
        _event_loop().call_soon_threadsafe(self._write, data, rid)
        kind, value = future.result()
        if kind == "err":
            if isinstance(value, BaseException):
                value.add_note(f"(raised on host {self.name})")
            raise value
        return value

    def _write(self, data: bytes, rid: int) -> None:
        try:
            self._process.stdin.write(data)
        except Exception as err:  # noqa: BLE001
            self._lose(f"the connection to {self.url} was lost ({err})")

    def clock_offset(self) -> clock.ClockOffset:
        """Its CLOCK_MONOTONIC against this machine's (:mod:`pytest_pktgen.host.clock`)."""
        return clock.measure(self.call)

    # --- objects kept there ------------------------------------------------------------------
    def new(self, factory: Callable, *args, **kwargs) -> Proxy:
        """``factory(*args, **kwargs)`` made and kept there; a Proxy to it here."""
        return Proxy(self, self.call(agent.new, factory, args, kwargs))

    def on(self, netns: str | None = None) -> Remote:
        """The Host for this machine's own namespace (None) or a named one there."""
        return Remote(self, netns)

    # --- ending ------------------------------------------------------------------------------
    def close(self) -> None:
        """Run :attr:`before_close`, say bye (the agent undoes what it still holds) and close
        the connection."""
        while self.before_close:
            step = self.before_close.pop()
            if self.connected:
                try:
                    step()
                except Exception:  # noqa: BLE001 - closing goes on; the agent undoes the rest
                    pass
        if self._process is None and self._conn is None:
            return
        try:
            _run(self._close(), 30)
        except Exception:  # noqa: BLE001 - closing what may be broken already
            pass
        self._process = self._conn = None

    async def _close(self) -> None:
        if self._process is not None and self._lost is None:
            try:
                self._process.stdin.write(agent.frame(pickle.dumps(("bye", 0, None))))
                await asyncio.wait_for(self._ended(), 20)
            except Exception:  # noqa: BLE001
                pass
        self._lose(f"the connection to {self.url} was closed")
        for task in self._tasks:
            task.cancel()
        await self._hang_up()

    async def _ended(self) -> None:
        await self._process.wait_closed()

    async def _hang_up(self) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()

    def sever(self) -> None:
        """Cut the connection as a failing network or a killed process would: no bye, the
        TCP connection dropped here (for tests and Ctrl-C)."""
        _event_loop().call_soon_threadsafe(self._drop)


class Proxy:
    """An object kept by a machine's agent: attribute reads and method calls go there."""

    def __init__(self, machine: SshMachine, ref: agent.Ref):
        self._machine = machine
        self._ref = ref
        self._closed = False

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "closed" and self._closed:  # the object is gone there: it was closed
            return True
        key = (self._ref.kind, name)
        if self._machine._kinds.get(key) != "method":
            kind, value = self._machine.call(agent.attribute, self._ref, name)
            if kind == "value":
                return value
            self._machine._kinds[key] = kind

        def method(*args, **kwargs):
            return self._machine.call(agent.invoke, self._ref, name, args, kwargs)

        method.__name__ = name
        return method

    def __reduce__(self):  # sent back to its own machine: the agent resolves it to the object
        return agent.Ref, (self._ref.key, self._ref.kind)

    def close(self) -> None:
        """The object's ``close()`` there, and forgotten (again: nothing)."""
        if self._machine.lost is None and not self._closed:
            self._machine.call(agent.drop, self._ref, True)
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{self._ref.kind} #{self._ref.key} on {self._machine.name}>"


class Remote:
    """A network namespace of a machine reached over SSH (None: the agent's own)."""

    def __init__(self, machine: SshMachine, netns: str | None = None):
        self.machine = machine
        self.netns = netns

    def _place(self, method: str, *args, **kwargs):
        return self.machine.call(agent.on_place, self.netns, method, *args, **kwargs)

    def call(self, fn: Callable[..., T], *args) -> T:
        return self._place("call", fn, *args)

    def read_text(self, path: str | Path) -> str:
        return self._place("read_text", str(path))

    def write_text(self, path: str | Path, text: str) -> None:
        self._place("write_text", str(path), text)

    def netlink(self) -> netlink.IPRoute:
        return self.machine.new(agent.netlink_on, self.netns)  # type: ignore[return-value]

    def run(self, argv: list[str], **kwargs):
        return self._place("run", list(argv), **kwargs)

    @property
    def exists(self) -> bool:
        return self._place("exists")

    def namespace_id(self) -> int:
        return self._place("namespace_id")

    def __repr__(self) -> str:
        return f"Remote({self.machine.name!r}, {self.netns!r})"

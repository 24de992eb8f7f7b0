"""Exceptions of pytest-pktgen: each says what was asked, what the kernel said, and what to do."""

from __future__ import annotations

import errno as _errno

# 6.1 and 6.12 answer clone_skb/burst refusals with the kernel-internal ENOTSUPP (524),
# mainline with EOPNOTSUPP (95). Both mean "this device or mode cannot do that".
ENOTSUPP_KERNEL = 524
NOT_SUPPORTED_ERRNOS = frozenset({_errno.EOPNOTSUPP, ENOTSUPP_KERNEL})


class PktgenError(Exception):
    """Base class of every error raised by pytest-pktgen."""

    def __reduce__(self):
        # Across an SSH host's channel (pickle): rebuilt from its attributes, not by calling
        # __init__ again with the message as the only argument.
        state = dict(self.__dict__)
        if isinstance(self, OSError):
            state.update(errno=self.errno, strerror=self.strerror)
        return _rebuild, (type(self), self.args, state)


def _rebuild(cls, args, state):
    exc = cls.__new__(cls)
    exc.args = args
    for name, value in state.items():
        setattr(exc, name, value)
    return exc


class PktgenConfigError(PktgenError, ValueError):
    """A parameter value was refused before anything reached the kernel."""

    def __init__(self, param: str, value: object, allowed: str, device: str | None = None):
        self.param = param
        self.value = value
        self.allowed = allowed
        self.device = device
        where = f" for {device}" if device else ""
        super().__init__(f"pktgen parameter {param!r}{where}: {value!r} is not allowed; {allowed}")


class PktgenWriteError(PktgenError, OSError):
    """The kernel refused a command written to /proc/net/pktgen."""

    def __init__(self, path: str, command: str, err: int, result: str | None = None):
        self.path = path
        self.command = command
        self.result = result
        if err in NOT_SUPPORTED_ERRNOS:
            name, text = "EOPNOTSUPP" if err == _errno.EOPNOTSUPP else "ENOTSUPP", "not supported"
        else:
            name, text = _errno.errorcode.get(err, str(err)), _strerror(err)
        hint = _HINTS.get(name, "")
        said = f"; pktgen says {result!r}" if result else ""
        message = f"writing {command!r} to {path} failed with {name} ({text}){said}{hint}"
        OSError.__init__(self, err, message)
        self.errno = err

    @property
    def not_supported(self) -> bool:
        return self.errno in NOT_SUPPORTED_ERRNOS

    def __str__(self) -> str:  # OSError's own str adds "[Errno N]" noise before our sentence
        return self.strerror


class PktgenResultError(PktgenError):
    """The write was accepted, but pktgen's Result line does not start with 'OK:'."""

    def __init__(self, path: str, command: str, result: str):
        self.path = path
        self.command = command
        self.result = result
        super().__init__(f"pktgen did not accept {command!r} on {path}: Result is {result!r}")


class PktgenNotAvailable(PktgenError):
    """There is no /proc/net/pktgen and the module cannot be loaded here."""


class PktgenRunError(PktgenError):
    """A run did not end as asked: it hit its deadline, a device stopped early, or the host
    it ran on was lost. ``results``: the devices' final statuses that could be read;
    ``samples``: what each device had sent as the run went (the last ones when nothing more
    could be read)."""

    def __init__(self, message: str, results: dict | None = None, samples: list | None = None):
        self.results = results or {}
        self.samples = samples or []
        super().__init__(message)


class DeviceUnsupported(PktgenError):
    """The device cannot do what the config asks (e.g. clone_skb on veth): under pytest the
    test is reported as xfail with this reason, not as a failure."""


class HostError(PktgenError):
    """A host reached over SSH cannot be used, or was lost: the message names the host."""

    def __init__(self, host: str, problem: str):
        self.host = host
        self.problem = problem
        super().__init__(f"host {host}: {problem}")


class HostLost(HostError):
    """A host's connection went away mid-use; its agent undoes what it held there."""


class VmLabError(PktgenError):
    """The VM lab cannot boot: something it needs is missing. Raised before anything boots."""


def _strerror(err: int) -> str:
    import os

    return os.strerror(err)


_HINTS = {
    "EBUSY": " (the device is already on a pktgen thread: remove it with rem_device_all or"
    " wait for an earlier asynchronous removal to finish)",
    "ENODEV": " (no network device of that name in this network namespace)",
    "ENETDOWN": " (the network device is down: set it up first)",
    "EOPNOTSUPP": " (the device lacks shared-skb support, e.g. veth, or the xmit_mode forbids it:"
    " use clone_skb 0 and burst 1, or a dummy/physical device)",
    "ENOTSUPP": " (the device lacks shared-skb support, e.g. veth, or the xmit_mode forbids it:"
    " use clone_skb 0 and burst 1, or a dummy/physical device)",
    "EPERM": " (writing pgctrl needs CAP_NET_ADMIN: run as root)",
    "E2BIG": " (too many entries: at most 20 imix weights and 16 MPLS labels)",
}

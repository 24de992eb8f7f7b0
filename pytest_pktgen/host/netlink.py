"""pyroute2, the parts the package uses: :class:`IPRoute`, the ``netns`` helpers, and the
rtnetlink message classes that :mod:`pytest_pktgen.host.nicstate` sends saved messages back with,
each imported when first asked for (``netlink.IPRoute``): a session that never opens a netlink
socket never imports pyroute2 at all (9 s of a trivial session's start in the VM lab).

``import pyroute2`` runs the package's ``__init__``, which imports every socket it has (NDB,
IPDB, conntrack, nftables, wireless, devlink, ...): 233 modules, 0.2 s on a host, 18-22 s in
the VM lab under TCG (9p root, no page cache), paid by every Python that loads the plugin
there, child sessions included. The two parts used here import 1/5 of that.

So the package is entered without its ``__init__``: a module object made from its spec, whose
submodules import as usual. Anything else asked of it (``from pyroute2 import NDB`` in a user's
conftest, ``pyroute2.__version__``) runs the real ``__init__`` at that moment, into the same
module object, and is answered as pyroute2 answers it. If pyroute2 is already imported,
nothing is changed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types


def _enter_lazily(name: str = "pyroute2") -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"{name} is not installed", name=name)
    package = importlib.util.module_from_spec(spec)
    lock = threading.Lock()

    def __getattr__(attr: str):
        try:  # a submodule (``from pyroute2 import netns``) imports on its own
            return importlib.import_module(f"{name}.{attr}")
        except ModuleNotFoundError as err:
            if err.name != f"{name}.{attr}":
                raise
        with lock:  # the real __init__, once, into this module (two threads may ask at once)
            if package.__dict__.pop("__getattr__", None) is not None:
                spec.loader.exec_module(package)
        try:
            return package.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    package.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[name] = package


def loaded_fully(module: types.ModuleType | None = None) -> bool:
    """Whether pyroute2's own ``__init__`` has run (for tests and the start-up bench)."""
    module = module or sys.modules.get("pyroute2")
    return module is not None and "__getattr__" not in module.__dict__


# name -> (module, attribute of it; None: the module itself)
_PARTS = {
    "IPRoute": ("pyroute2.iproute.linux", "IPRoute"),
    "IoctlEthtool": ("pyroute2.ethtool.ioctl", "IoctlEthtool"),
    "NetlinkError": ("pyroute2.netlink.exceptions", "NetlinkError"),
    "netns": ("pyroute2.netns", None),
    "nlmsg": ("pyroute2.netlink", "nlmsg"),
    "ifaddrmsg": ("pyroute2.netlink.rtnl.ifaddrmsg", "ifaddrmsg"),
    "ndmsg": ("pyroute2.netlink.rtnl.ndmsg", "ndmsg"),
    "rtmsg": ("pyroute2.netlink.rtnl.rtmsg", "rtmsg"),
    "tcmsg": ("pyroute2.netlink.rtnl.tcmsg", "tcmsg"),
}


def __getattr__(name: str):
    """A part of pyroute2, imported on first use (PEP 562); then a plain module attribute."""
    if name not in _PARTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _enter_lazily()
    module, attr = _PARTS[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


__all__ = ["IPRoute", "IoctlEthtool", "NetlinkError", "ifaddrmsg", "loaded_fully", "ndmsg",  # noqa: F822
           "netns", "nlmsg", "rtmsg", "tcmsg"]  # noqa: F822 - provided by __getattr__

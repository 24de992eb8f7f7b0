"""pyroute2, the parts the package uses: :class:`IPRoute`, the ``netns`` helpers, and the
rtnetlink message classes that :mod:`pytest_pktgen.nicstate` sends saved messages back with.

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


_enter_lazily()

from pyroute2 import netns  # noqa: E402
from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink import nlmsg  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402
from pyroute2.netlink.rtnl.ndmsg import ndmsg  # noqa: E402
from pyroute2.netlink.rtnl.rtmsg import rtmsg  # noqa: E402
from pyroute2.netlink.rtnl.tcmsg import tcmsg  # noqa: E402

__all__ = ["IPRoute", "NetlinkError", "ifaddrmsg", "loaded_fully", "ndmsg", "netns", "nlmsg",
           "rtmsg", "tcmsg"]

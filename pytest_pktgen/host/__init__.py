"""Where things run: the Host seam (here, a namespace, another machine over SSH) and what sits
on it: namespaces, netlink, links, NIC facts and state, IRQs, the ledger of what a session
made."""

from .seam import LOCAL, Host, Local, Namespace, forget, machine, new_on, on, register

__all__ = ["LOCAL", "Host", "Local", "Namespace", "forget", "machine", "new_on", "on",
           "register"]

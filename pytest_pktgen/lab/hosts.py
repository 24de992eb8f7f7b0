"""A lab of SSH hosts on one machine: each a network namespace running its own ``sshd``.

pktgen is per network namespace, so a namespace with its own sshd really is a separate pktgen
host to a controller that reaches it over SSH: its own pgctrl, threads, devices and links. Each
gets a management link from this namespace (198.19.254.4i+1 here, .4i+2 there, /30), the lab
makes its keys per session (a host key, a client key, known_hosts and an OpenSSH client config
naming each host by its name), and everything goes at the end: the hosts' processes (sshd, the
agents it started) are killed, the namespaces and links deleted, the keys removed.

sshd comes from the machine (``/usr/sbin/sshd``) or from ``make deps``'s unpacked copy of
Debian's openssh-server (nothing installed, no service started); ``$PKTGEN_SSHD`` names
another. OpenSSH drops privileges to a ``sshd`` user: where the passwd file has none, sshd runs
in a mount namespace of its own that sees a copy of it with one added.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import VmLabError
from ..host import netlink, netns, ssh
from ..host.ledger import ledger
from ..host.netdev import quiet

MGMT_NET = "198.19.254"
SSHD_PATHS = (Path("/usr/sbin/sshd"),
              Path.home() / ".cache/pytest-pktgen/openssh/usr/sbin/sshd")
START_TIMEOUT_S = 60.0  # sshd listening (seconds under TCG)


def find_sshd() -> Path:
    named = os.environ.get("PKTGEN_SSHD")
    for path in ([Path(named)] if named else SSHD_PATHS):
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise VmLabError(f"no sshd for the SSH lab hosts: looked at "
                     f"{', '.join(str(p) for p in ([named] if named else SSHD_PATHS))}; "
                     "`make deps` unpacks Debian's openssh-server into the cache")


@dataclass
class LabHost:
    name: str
    netns: str
    address: str  # its management address
    mgmt_link: str  # the management link's end in this namespace
    sshd: subprocess.Popen | None = None


class SshLab:
    """Hosts named ``names``, each a namespace with its own sshd; a context manager.

    ``path_env`` sets the PATH of a host's SSH sessions (by name): ``{"b": "/nonexistent"}``
    makes a host without python3."""

    def __init__(self, names=("a", "b"), *, path_env: dict[str, str] | None = None):
        if len(set(names)) != len(names) or not 0 < len(names) <= 60:
            raise ValueError(f"SSH lab host names: 1 to 60 different names, not {names!r}")
        self.names = [ssh.check_host_name(n) for n in names]
        self.path_env = path_env or {}
        self.hosts: dict[str, LabHost] = {}
        self.dir: Path | None = None
        self._stack = contextlib.ExitStack()

    # --- what tests use ----------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.dir / "client_ed25519"

    def machine(self, name: str, **kwargs) -> ssh.SshMachine:
        """An SshMachine for a lab host, reached by its name through the lab's ssh config (not
        connected yet)."""
        kwargs.setdefault("config", [str(self.config)])
        kwargs.setdefault("known_hosts", str(self.known_hosts))
        return ssh.SshMachine(name, kwargs.pop("url", f"ssh://{name}"), **kwargs)

    def url(self, name: str) -> str:
        return f"ssh://root@{self.hosts[name].address}"

    # --- making it -----------------------------------------------------------------------------
    def __enter__(self) -> SshLab:
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _make(self) -> None:
        sshd = find_sshd()
        self.dir = Path(tempfile.mkdtemp(prefix="pytest-pktgen-sshlab-"))
        self._stack.callback(shutil.rmtree, self.dir, True)
        _keygen(self.dir / "host_ed25519")
        _keygen(self.client_key)
        (self.dir / "authorized_keys").write_text((self.dir / "client_ed25519.pub").read_text())
        host_key = (self.dir / "host_ed25519.pub").read_text().split()[:2]
        passwd = self._passwd()
        for i, name in enumerate(self.names):
            ns = netns.create("pghost")
            self._stack.callback(self._remove_host, ns)
            here, there = f"{MGMT_NET}.{4 * i + 1}", f"{MGMT_NET}.{4 * i + 2}"
            link = self._mgmt_link(ns, here, there)
            host = self.hosts[name] = LabHost(name, ns, there, link)
            config = self.dir / f"sshd_{name}.conf"
            config.write_text(_sshd_config(self.dir, there, self.path_env.get(name)))
            host.sshd = _start_sshd(sshd, config, ns, passwd, self.dir / f"sshd_{name}.log")
        with open(self.known_hosts, "w") as out:
            for host in self.hosts.values():
                out.write(f"{host.name},{host.address} {' '.join(host_key)}\n")
        with open(self.config, "w") as out:
            for host in self.hosts.values():
                out.write(f"Host {host.name}\n    HostName {host.address}\n    User root\n"
                          f"    IdentityFile {self.client_key}\n    IdentitiesOnly yes\n\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        for host in self.hosts.values():
            _wait_listening(host, deadline, self.dir / f"sshd_{host.name}.log")

    def _passwd(self) -> Path | None:
        """A passwd file with a ``sshd`` user, where the machine's has none."""
        try:
            pwd.getpwnam("sshd")
            return None
        except KeyError:
            path = self.dir / "passwd"
            path.write_text(Path("/etc/passwd").read_text()
                            + "sshd:x:65533:65534:sshd privsep:/run/sshd:/usr/sbin/nologin\n")
            return path

    def _mgmt_link(self, ns: str, here: str, there: str) -> str:
        name, peer = netns.unique_name("pgm"), netns.unique_name("pgmp")
        with netlink.IPRoute() as ipr:
            ledger().add("links", name)
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer, "net_ns_fd": ns})
            quiet(name)
            index = ipr.link_lookup(ifname=name)[0]
            ipr.addr("add", index=index, address=here, prefixlen=30)
            ipr.link("set", index=index, state="up")
        quiet(peer, ns)
        with netlink.IPRoute(netns=ns, flags=0) as ipr:
            index = ipr.link_lookup(ifname=peer)[0]
            ipr.addr("add", index=index, address=there, prefixlen=30)
            ipr.link("set", index=index, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return name

    # --- undoing it ----------------------------------------------------------------------------
    def kill_processes(self, name: str) -> None:
        """Every process of a host (sshd, its sessions, their agents), SIGKILLed."""
        _kill_in(self.hosts[name].netns)

    def _remove_host(self, ns: str) -> None:
        _kill_in(ns)
        netns.remove(ns)  # its end of the management link goes with it, and so the link
        for host in self.hosts.values():
            if host.netns == ns:
                ledger().drop("links", host.mgmt_link)
                if host.sshd is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        host.sshd.wait(5)  # reaped

    def close(self) -> None:
        self._stack.close()
        self.hosts.clear()


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pytest-pktgen lab",
                    "-f", str(path)], check=True, capture_output=True)


def _sshd_config(dir: Path, address: str, path_env: str | None) -> str:
    lines = [f"ListenAddress {address}:22", f"HostKey {dir / 'host_ed25519'}",
             f"AuthorizedKeysFile {dir / 'authorized_keys'}", "PermitRootLogin prohibit-password",
             "PubkeyAuthentication yes", "PasswordAuthentication no",
             "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PidFile none",
             "UseDNS no", "LogLevel VERBOSE", "MaxSessions 20", "MaxStartups 20:30:60"]
    if path_env:
        lines.append(f"SetEnv PATH={path_env}")
    return "\n".join(lines) + "\n"


# sshd in a mount namespace of its own, where /etc/passwd has a sshd user and /run/sshd (its
# privilege separation directory) exists
_WRAPPER = ('[ -z "$1" ] || mount --bind "$1" /etc/passwd || exit 1; '
            'mkdir -p /run/sshd && chmod 755 /run/sshd && exec "$2" -D -e -f "$3"')


def _start_sshd(sshd: Path, config: Path, ns: str, passwd: Path | None,
                log: Path) -> subprocess.Popen:
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _WRAPPER, "sh",
            str(passwd or ""), str(sshd), str(config)]
    with open(log, "wb") as out:
        return netns.call_in(ns, subprocess.Popen, argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)


def _wait_listening(host: LabHost, deadline: float, log: Path) -> None:
    while True:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            try:
                sock.connect((host.address, 22))
                return
            except OSError:
                pass
        if host.sshd.poll() is not None or time.monotonic() > deadline:
            said = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise VmLabError(f"the SSH lab's sshd for host {host.name} is not listening on "
                             f"{host.address}:22 (exit status {host.sshd.poll()}): {said}")
        time.sleep(0.1)


def _kill_in(ns: str) -> None:
    """SIGKILL every process whose network namespace is ``ns``; wait until they are gone."""
    try:
        inode = os.stat(netns.NETNS_DIR / ns).st_ino
    except FileNotFoundError:
        return
    for _ in range(50):
        pids = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if os.stat(entry / "ns/net").st_ino == inode:
                    pids.append(int(entry.name))
            except OSError:
                continue
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)

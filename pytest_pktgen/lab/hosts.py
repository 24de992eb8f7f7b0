"""A lab of SSH hosts on one machine: each a network namespace running its own ``sshd``.

pktgen is per network namespace, so a namespace with its own sshd really is a separate pktgen
host to a controller that reaches it over SSH: its own pgctrl, threads, devices and links. Each
gets a management link from this namespace (198.19.254.4i+1 here, .4i+2 there, /30), the lab
makes its keys per session (a host key, a client key, known_hosts and an OpenSSH client config
naming each host by its name), and everything goes at the end: the hosts' processes (sshd, the
agents it started) are killed, the namespaces and links deleted, the keys removed.

sshd comes from the machine (``/usr/sbin/sshd``) or from ``make deps``'s unpacked copy of
Debian's openssh-server (nothing installed, no service started); ``$PKTGEN_SSHD`` names
another. sshd runs in a mount namespace of its own that sees copies of the account files: a
``sshd`` user added where there is none (OpenSSH drops privileges to it), root's password
made unusable rather than locked (without PAM, sshd refuses a locked root even a key).
"""

from __future__ import annotations

import contextlib
import functools
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
TEARDOWN_TIMEOUT_S = 20.0  # the kernel's teardown of the hosts' namespaces (under 1 s)


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
        accounts = self._accounts()
        for i, name in enumerate(self.names):
            ns = netns.create("pghost")
            self._stack.callback(self._remove_host, ns)
            here, there = f"{MGMT_NET}.{4 * i + 1}", f"{MGMT_NET}.{4 * i + 2}"
            link = self._mgmt_link(ns, here, there)
            host = self.hosts[name] = LabHost(name, ns, there, link)
            config = self.dir / f"sshd_{name}.conf"
            config.write_text(_sshd_config(self.dir, self.path_env.get(name)))
            host.sshd = _start_sshd(sshd, config, ns, accounts, self.dir / f"sshd_{name}.log")
        with open(self.known_hosts, "w") as out:
            for host in self.hosts.values():
                out.write(f"{host.name},{host.address} {' '.join(host_key)}\n")
        with open(self.config, "w") as out:
            for host in self.hosts.values():
                out.write(f"Host {host.name}\n    HostName {host.address}\n    User root\n"
                          f"    IdentityFile {self.client_key}\n    IdentitiesOnly yes\n"
                          f"    UserKnownHostsFile {self.known_hosts}\n\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        for host in self.hosts.values():
            _wait_listening(host, deadline, self.dir / f"sshd_{host.name}.log")

    def _accounts(self) -> tuple[Path, Path]:
        """The passwd and shadow files sshd sees (in its own mount namespace): the machine's,
        with a ``sshd`` user where there is none, root's password field made unusable rather
        than locked (``*`` or ``!``: sshd then refuses root even with a key, without PAM), so
        keys alone let root in, and root's shell ``/bin/sh``: a lab host is a plain machine,
        not this one's root with its ``.bashrc`` (pyenv's set-up there took 10 s of every
        connection under TCG, and its python3 came first on the PATH)."""
        users = []
        for line in Path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "root" and len(fields) == 7:
                fields[6] = "/bin/sh"  # a lab host's plain shell: no rc file of this machine's
            users.append(":".join(fields))
        passwd = "\n".join(users) + "\n"
        try:
            pwd.getpwnam("sshd")
        except KeyError:
            passwd += "sshd:x:65533:65534:sshd privsep:/run/sshd:/usr/sbin/nologin\n"
        lines = []
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "root" and len(fields) > 1 and fields[1][:1] in ("*", "!", ""):
                fields[1] = "$6$pytest-pktgen$no-password-matches-this"
            lines.append(":".join(fields))
        out = self.dir / "passwd", self.dir / "shadow"
        out[0].write_text(passwd)
        out[1].write_text("\n".join(lines) + "\n")
        out[1].chmod(0o600)
        return out

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

    def cable(self, one: str, other: str,
              addresses: tuple[str, str] | None = None) -> tuple[str, str]:
        """A veth pair between two hosts, up, as a cable between their NICs would be: its end
        on ``one`` and its end on ``other`` (names), with ``addresses`` (/30s) if given: a
        network only those two reach (sshd listens there too). Gone with the hosts."""
        here, there = netns.unique_name("pgca"), netns.unique_name("pgcb")
        ns_one, ns_other = self.hosts[one].netns, self.hosts[other].netns
        with netlink.IPRoute(netns=ns_one, flags=0) as ipr:
            ipr.link("add", ifname=here, kind="veth",
                     peer={"ifname": there, "net_ns_fd": ns_other})
        for n, (ifname, ns) in enumerate(((here, ns_one), (there, ns_other))):
            quiet(ifname, ns)
            with netlink.IPRoute(netns=ns, flags=0) as ipr:
                index = ipr.link_lookup(ifname=ifname)[0]
                if addresses:
                    ipr.addr("add", index=index, address=addresses[n], prefixlen=30)
                ipr.link("set", index=index, state="up")
        return here, there

    # --- undoing it ----------------------------------------------------------------------------
    def kill_processes(self, name: str) -> None:
        """Every process of a host (sshd, its sessions, their agents), SIGKILLed."""
        _kill_in(self.hosts[name].netns)

    def _remove_host(self, ns: str) -> None:
        _kill_in(ns)
        netns.remove(ns)  # the kernel tears it down later, its links with it
        for host in self.hosts.values():
            if host.netns == ns and host.sshd is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host.sshd.wait(5)  # reaped

    def close(self) -> None:
        """Every host's processes killed, its namespace removed; then wait until the kernel
        has torn the namespaces down (a host's management link goes with its namespace):
        under TCG that takes seconds and holds up whoever makes a namespace next."""
        links = {host.mgmt_link: host.name for host in self.hosts.values()}
        self._stack.close()
        self.hosts.clear()
        deadline = time.monotonic() + TEARDOWN_TIMEOUT_S
        held = []
        with netlink.IPRoute() as ipr:
            while any(ipr.link_lookup(ifname=name) for name in links):
                if time.monotonic() > deadline:  # something holds a namespace: say so
                    held = [host for name, host in links.items() if ipr.link_lookup(ifname=name)]
                    for name in links:
                        if ipr.link_lookup(ifname=name):
                            ipr.link("del", ifname=name)
                    break
                time.sleep(0.1)
        for name in links:
            ledger().drop("links", name)
        if held:
            raise VmLabError(f"the SSH lab's host(s) {', '.join(held)} outlived their removal "
                             f"by {TEARDOWN_TIMEOUT_S:.0f}s: something still holds their "
                             "namespace (a thread parked in it, a socket opened there)")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pytest-pktgen lab",
                    "-f", str(path)], check=True, capture_output=True)


def _sshd_config(dir: Path, path_env: str | None) -> str:
    # every address of its namespace: the management one, and a cable's to another host
    lines = ["ListenAddress 0.0.0.0:22", f"HostKey {dir / 'host_ed25519'}",
             f"AuthorizedKeysFile {dir / 'authorized_keys'}", "PermitRootLogin prohibit-password",
             "PubkeyAuthentication yes", "PasswordAuthentication no",
             "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PidFile none",
             "UseDNS no", "LogLevel VERBOSE", "MaxSessions 20", "MaxStartups 20:30:60"]
    if path_env:
        lines.append(f"SetEnv PATH={path_env}")
    return "\n".join(lines) + "\n"


# sshd in a mount namespace of its own, where /etc/passwd and /etc/shadow are the lab's
# (SshLab._accounts) and /run/sshd (its privilege separation directory) exists. Its mounts keep
# their propagation (--propagation unchanged): /run/netns stays shared with this namespace's,
# so a network namespace made by an agent there is seen here by its name and the other way
# round; the mount holding /etc alone is made private first, so the two files stay the lab's.
_WRAPPER = ('m=$(findmnt -n -o TARGET -T /etc) && mount --make-private "$m" && '
            'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/shadow || exit 1; '
            'mkdir -p /run/sshd && chmod 755 /run/sshd && exec "$3" -D -e -f "$4"')


def _start_sshd(sshd: Path, config: Path, ns: str, accounts: tuple[Path, Path],
                log: Path) -> subprocess.Popen:
    argv = ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c", _WRAPPER, "sh",
            str(accounts[0]), str(accounts[1]), str(sshd), str(config)]
    with open(log, "wb") as out:
        return netns.call_in(ns, functools.partial(
            subprocess.Popen, argv, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True))


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

"""Several hosts on one machine: network namespaces on a bridge of their own, a PostgreSQL
server of the cluster's own on the head host, a Ray head and Ray worker nodes, each on its own
address. Used by tests/test_ray_cluster.py; runnable by hand (python tests/netcluster.py)
to look at one.

    hub namespace:   bridge br0, no address (nothing of it is reachable from the machine)
    host namespaces: one veth end each on br0, 10.213.0.N/24, their own loopback

Nothing listens on the machine's own interfaces: every server is started inside a host
namespace, on that host's address. The test process reaches the PostgreSQL server through
its Unix socket (a file, which network namespaces do not separate). Everything is torn down
by pid and by name, the processes of a namespace first (`ip netns pids`), even when a test
fails midway.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.213.0"
PG_PORT = 5432
RAY_PORT = 6379
DASHBOARD_PORT = 8265


def pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: postgresql)")
    return str(found[-1])


def missing_capability() -> str | None:
    """Why this machine cannot build the cluster, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (Debian: iproute2)"
    try:
        pg_bin("initdb")
    except RuntimeError as err:
        return str(err)
    return None


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


@dataclass
class Host:
    name: str  # the host's part of the names, e.g. "head"
    netns: str
    ip: str
    temp: Path  # this host's Ray folder (short: Ray's socket paths must fit in 107 bytes)

    def argv(self, *argv: str) -> list[str]:
        """ARGV run on this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def pids(self) -> list[int]:
        out = sh("ip", "netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split()]


@dataclass
class NetCluster:
    root: Path  # a folder of this cluster's own: PostgreSQL's data, sockets, Ray's folders
    env: dict  # environment of every Ray process and driver (the auth token, PATH)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    hosts: dict = field(default_factory=dict)
    hub: str = ""
    pg_data: Path | None = None

    # --- the network -------------------------------------------------------------------------

    def add_host(self, name: str) -> Host:
        """A namespace on the bridge, with the next address of the subnet."""
        if not self.hub:
            self.hub = f"hpn-{self.tag}-hub"
            sh("ip", "netns", "add", self.hub)
            sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        n = len(self.hosts) + 1
        host = Host(name, f"hpn-{self.tag}-{name}", f"{SUBNET}.{n}",
                    Path(f"/tmp/hpn-{self.tag}{n}"))
        self.hosts[name] = host
        sh("ip", "netns", "add", host.netns)
        # veth names are at most 15 bytes, and live in the machine's namespace until moved.
        inner, outer = f"hpn{self.tag}{n}", f"hpn{self.tag}{n}b"
        sh("ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
        sh("ip", "link", "set", inner, "netns", host.netns)
        sh("ip", "link", "set", outer, "netns", self.hub)
        sh("ip", "-n", self.hub, "link", "set", outer, "master", "br0")
        sh("ip", "-n", self.hub, "link", "set", outer, "up")
        sh("ip", "-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", inner)
        sh("ip", "-n", host.netns, "link", "set", inner, "up")
        sh("ip", "-n", host.netns, "link", "set", "lo", "up")
        return host

    # --- PostgreSQL on a host ------------------------------------------------------------------

    def start_postgres(self, host: Host) -> tuple[str, str]:
        """A server of this cluster's own on HOST's address, trust auth for the subnet only.
        Returns (the URL the hosts use, the URL this process uses: the Unix socket)."""
        self.pg_data, sock = self.root / "pg", self.root / "pgsock"
        os.chmod(self.root, 0o755)
        for folder in (self.pg_data, sock):
            folder.mkdir(mode=0o700)
            shutil.chown(folder, "postgres")
        sh("runuser", "-u", "postgres", "--", pg_bin("initdb"), "-D", str(self.pg_data),
           "-A", "trust", "-U", "postgres", "--no-sync")
        hba = self.pg_data / "pg_hba.conf"
        hba.write_text("local all all trust\n"
                       f"host all all {SUBNET}.0/24 trust\n")
        sh(*host.argv("runuser", "-u", "postgres", "--", pg_bin("pg_ctl"), "-D",
                      str(self.pg_data), "-w", "-l", str(sock / "pg.log"), "-o",
                      f"-h {host.ip} -p {PG_PORT} -k {sock} -c fsync=off -c max_connections=200",
                      "start"))
        sh("runuser", "-u", "postgres", "--", pg_bin("createdb"), "-h", str(sock),
           "-p", str(PG_PORT), "hpsearch")
        return (f"postgresql+psycopg2://postgres@{host.ip}:{PG_PORT}/hpsearch",
                f"postgresql+psycopg2://postgres@/hpsearch?host={sock}&port={PG_PORT}")

    # --- Ray -------------------------------------------------------------------------------------

    def ray(self, host: Host, *args: str, env: dict | None = None, timeout: float = 120):
        ray = Path(sys.executable).with_name("ray")
        return sh(*host.argv(str(ray), *args), env={**os.environ, **self.env, **(env or {})},
                  timeout=timeout)

    def start_head(self, host: Host, cpus: int, env: dict | None = None,
                   dashboard: bool = False) -> str:
        where = ([f"--dashboard-host={host.ip}", f"--dashboard-port={DASHBOARD_PORT}"]
                 if dashboard else ["--include-dashboard=false"])
        self.ray(host, "start", "--head", f"--node-ip-address={host.ip}", f"--port={RAY_PORT}",
                 f"--num-cpus={cpus}", "--num-gpus=0", "--disable-usage-stats",
                 f"--temp-dir={host.temp}", *where, env=env)
        return f"{host.ip}:{RAY_PORT}"

    def join(self, host: Host, head: Host, cpus: int, env: dict | None = None) -> None:
        self.ray(host, "start", f"--address={head.ip}:{RAY_PORT}",
                 f"--node-ip-address={host.ip}", f"--num-cpus={cpus}", "--num-gpus=0",
                 "--disable-usage-stats", f"--temp-dir={host.temp}", env=env)

    def kill_host(self, host: Host) -> list[int]:
        """The host dies: every process in its namespace, at once (SIGKILL)."""
        pids = host.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    # --- tear-down -------------------------------------------------------------------------------

    def close(self) -> None:
        """Everything this cluster started, by pid and by name; safe to call more than once."""
        if self.pg_data is not None and self.pg_data.exists():
            sh("runuser", "-u", "postgres", "--", pg_bin("pg_ctl"), "-D", str(self.pg_data),
               "-m", "immediate", "stop", check=False)
        for host in self.hosts.values():
            self.kill_host(host)
        deadline = time.monotonic() + 10
        while any(h.pids() for h in self.hosts.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for host in self.hosts.values():
            sh("ip", "netns", "del", host.netns, check=False)
            shutil.rmtree(host.temp, ignore_errors=True)
        if self.hub:
            sh("ip", "netns", "del", self.hub, check=False)
        self.hosts, self.hub = {}, ""


if __name__ == "__main__":
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="hpn-"))
    c = NetCluster(root, {})
    try:
        head, other = c.add_host("head"), c.add_host("w1")
        print(c.start_postgres(head))
        print(c.start_head(head, 1))
        c.join(other, head, 1)
        time.sleep(5)
        print(c.ray(head, "status").stdout)
        input("enter") if sys.stdin.isatty() else None
    finally:
        c.close()
        shutil.rmtree(root, ignore_errors=True)

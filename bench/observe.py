"""What the gateways and the controller look like, read from outside the tools the gateway bench times.

Nothing here goes over SSH: a gateway is read inside its own namespaces through the lab
(`lab.run`), and ssh processes are counted by a wrapper on PATH, so a tool cannot miscount itself.
"""

from __future__ import annotations

import ipaddress
import os
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

INTERFACE = "wgsky0"
CONF = f"/etc/wireguard/{INTERFACE}.conf"



class SshCounter:
    """An `ssh` wrapper that logs one line per ssh process ("KIND GATEWAY"), then runs the lab's ssh.

    KIND is `control` for `ssh -O ...` (asks a local master, reaches no gateway), `resolve` for
    `ssh -G` (prints the config it would use, reaches no gateway), `master` for a shared
    connection started with -N, `session` for anything else (a command, or sftp's channel).
    The gateway is the first argument that is one of the lab's Host aliases.
    """

    def __init__(self, folder: Path, lab, gateways: list[str]) -> None:
        self.bin_dir = folder / "counting-bin"
        self.log = folder / "ssh-processes.log"
        self.bin_dir.mkdir(parents=True)
        self.log.touch()
        aliases = "|".join(gateways)
        wrapper = self.bin_dir / "ssh"
        wrapper.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            # Logs this ssh process, then runs the lab's ssh (inside the controller's namespace).
            kind=session gateway=none
            for arg in "$@"; do
                case "$arg" in
                    -O) kind=control ;;
                    -G) kind=resolve ;;
                    -N) [ "$kind" = session ] && kind=master ;;
                    {aliases}) gateway=$arg; break ;;
                esac
            done
            echo "$kind $gateway" >> {self.log}
            exec {lab.bin_dir / 'ssh'} "$@"
            """))
        wrapper.chmod(0o755)

    def snapshot(self) -> Counter:
        return Counter(tuple(line.split()) for line in self.log.read_text().splitlines() if line.strip())


def gateway_cpu_seconds(lab) -> float:
    """CPU time the gateways' sshds have spent so far on the connections they served: user+system
    of the children each listener reaped (every login's sshd, the sessions' shells and what they
    ran), and of those still running (a connection kept open across runs, and what it reaped),
    from /proc. What a run costs the gateways, whatever else the machine was doing."""
    ticks = os.sysconf("SC_CLK_TCK")
    times, parents = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            times[int(entry.name)] = (int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))  # utime+stime, cutime+cstime
    total = 0
    for g in lab.gateways:
        process = lab._sshd.get(g)
        if process is None or process.pid not in times:
            continue
        total += times[process.pid][1]
        for pid in times:
            ancestor = parents.get(pid)
            while ancestor not in (None, 0, 1, process.pid):
                ancestor = parents.get(ancestor)
            if ancestor == process.pid:
                total += sum(times[pid])
    return total / ticks


def sshd_logins(lab) -> Counter:
    """Accepted logins per gateway so far, from each sshd's own log."""
    return Counter({g: (lab.workdir / g / "sshd.log").read_text(errors="replace").count("Accepted publickey") for g in lab.gateways})


@dataclass(frozen=True)
class GatewayView:
    """What one gateway looks like from inside its namespaces (read through the lab, not SSH)."""

    conf_id: str | None  # inode and ctime of the config: a rewrite (atomic rename) changes it
    up: bool
    allowed: tuple[str, ...]  # every AllowedIPs entry of every live peer
    peers: int
    routes: tuple[str, ...]  # destinations routed via the interface


INSPECT = f"""
stat -c '%i %z' {CONF} 2>/dev/null || echo none
echo ---
ip link show dev {INTERFACE} >/dev/null 2>&1 && echo up || echo down
echo ---
wg show {INTERFACE} allowed-ips 2>/dev/null
echo ---
ip -o route show dev {INTERFACE} 2>/dev/null; ip -o -6 route show dev {INTERFACE} 2>/dev/null
true
"""


def view(lab, gateway: str) -> GatewayView:
    out = lab.run(gateway, ["sh", "-c", INSPECT]).stdout
    conf, up, allowed, routes = (part.strip() for part in out.split("---\n"))
    peers = [line.split() for line in allowed.splitlines() if line.strip()]
    return GatewayView(
        conf_id=None if conf == "none" else conf,
        up=up == "up",
        allowed=tuple(cidr for peer in peers for cidr in peer[1:] if cidr != "(none)"),
        peers=len(peers),
        routes=tuple(line.split()[0] for line in routes.splitlines() if line.strip()),
    )


def views(lab) -> dict[str, GatewayView]:
    return {g: view(lab, g) for g in lab.gateways}


def check_gateways(after: dict[str, GatewayView], degree: Counter) -> str:
    """'ok', or what is wrong with the live interfaces: down, peers missing (`degree`: links per
    gateway), routes missing."""
    problems = []
    down = [g for g, v in after.items() if not v.up]
    if down:
        problems.append(f"down: {','.join(down)}")
    wrong = [f"{g} {v.peers}/{degree[g]}" for g, v in after.items() if v.up and v.peers != degree[g]]
    if wrong:
        problems.append(f"peers: {','.join(wrong)}")
    unrouted = {}
    for g, v in after.items():
        routes = [ipaddress.ip_network(r, strict=False) for r in v.routes if r != "default"]
        missing = [c for c in v.allowed if not any(_covers(r, ipaddress.ip_network(c, strict=False)) for r in routes)]
        if missing:
            unrouted[g] = len(missing)
    if unrouted:
        problems.append("no route: " + ",".join(f"{g} {n}" for g, n in unrouted.items()))
    return "ok" if not problems else "; ".join(problems)


def _covers(route, cidr) -> bool:
    return route.version == cidr.version and cidr.subnet_of(route)


KEYS = f"cat /etc/wireguard/{INTERFACE}.key 2>/dev/null; sed -n 's/^PrivateKey *= *//p' {CONF} 2>/dev/null; true"


def keys_on_controller(lab, folder: Path) -> int:
    """How many gateways' private keys (read on each gateway) appear in some file under `folder`."""
    keys = {}
    for g in lab.gateways:
        found = lab.run(g, ["sh", "-c", KEYS]).stdout.split()
        if found:
            keys[g] = {key.encode() for key in found}
    seen = set()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            seen.update(g for g, candidates in keys.items() if any(key in data for key in candidates))
    return len(seen)


def reset_gateways(lab) -> None:
    """Every gateway back to empty: interface down, config and key removed (untimed)."""
    for g in lab.gateways:
        lab.run(g, ["sh", "-c", f"wg-quick down {INTERFACE} >/dev/null 2>&1; ip link del {INTERFACE} 2>/dev/null; rm -f /etc/wireguard/*"], check=False)

"""The same work as Ansible does it: inventory, playbook (template + `wg syncconf` handler), ansible.cfg.

ansible-core comes from PyPI into a venv of its own, made on first use; the gateway bench
(bench/gateways.py) runs the playbook and counts what it does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.observe import INTERFACE

DEFAULT_VENV = Path(tempfile.gettempdir()) / "skyplan-bench-cache" / "ansible-core-venv"

PLAYBOOK = """\
# The wg-quick configs were rendered on this machine (private keys included) by skyplan's local
# mode; Ansible templates them onto the gateways and reloads the interface when the file changed.
- hosts: gateways
  gather_facts: false
  tasks:
    - name: wg-quick config
      ansible.builtin.template:
        src: "{{ render_dir }}/{{ inventory_hostname }}/{{ wg_iface }}.conf"
        dest: "/etc/wireguard/{{ wg_iface }}.conf"
        owner: root
        mode: "0600"
      notify: reload wireguard
    - name: interface up
      ansible.builtin.shell: "ip link show dev {{ wg_iface }} >/dev/null 2>&1 && echo up || { wg-quick up {{ wg_iface }} </dev/null >/dev/null 2>&1 && echo started; }"
      register: wg_up
      changed_when: "'started' in wg_up.stdout"
  handlers:
    - name: reload wireguard
      ansible.builtin.shell: "wg syncconf {{ wg_iface }} <(wg-quick strip {{ wg_iface }})"
      args:
        executable: /bin/bash
"""


def install(venv: Path) -> str | None:
    """Install ansible-core from PyPI into a venv of its own, once; the problem if it does not install."""
    if (venv / "bin" / "ansible-playbook").exists():
        return None
    print(f"installing ansible-core into {venv} ...", file=sys.stderr, flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    for argv in ([sys.executable, "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "-q", "ansible-core"]):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            return f"ansible-core did not install: {lines[-1].strip()[:200] if lines else f'exit {done.returncode}'}"
    return None


def version(venv: Path) -> str:
    done = subprocess.run([str(venv / "bin" / "ansible-playbook"), "--version"], capture_output=True, text=True)
    match = re.search(r"core ([\d.]+)", done.stdout)
    return match.group(1) if match else "?"


def write_workspace(ws: Path, gateways: list[str], ssh_config: Path, ssh: Path, render_dir: Path, forks: int, *, remote_tmp: Path) -> dict[str, str]:
    """Inventory, playbook and ansible.cfg in `ws`; returns the environment to run ansible-playbook in.

    `ssh_config` is the lab's client config (Host aliases, keys, known_hosts); `ssh` the wrapper
    that Ansible must use, first on PATH and for sftp too.
    """
    hosts = "".join(f"{g} ansible_host={g}\n" for g in gateways)
    (ws / "inventory.ini").write_text(
        f"[gateways]\n{hosts}\n[gateways:vars]\n"
        "ansible_user=root\n"
        f"ansible_ssh_common_args='-F {ssh_config}'\n"
        # sftp starts its own ssh; -S makes it the same wrapper, so it is counted and in the lab.
        f"ansible_sftp_extra_args='-S {ssh}'\n"
        "ansible_python_interpreter=/usr/bin/python3\n"
        f"wg_iface={INTERFACE}\n"
        f"render_dir={render_dir}\n"
    )
    (ws / "playbook.yml").write_text(PLAYBOOK)
    (ws / "ansible.cfg").write_text(
        "[defaults]\n"
        f"forks = {forks}\n"
        f"local_tmp = {ws / 'tmp-local'}\n"
        f"remote_tmp = {remote_tmp}\n"
        "retry_files_enabled = false\n"
        "interpreter_python = /usr/bin/python3\n"
        "[ssh_connection]\n"
        "pipelining = true\n"
        f"control_path_dir = {ws / 'cp'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "SSH_AUTH_SOCK"}
    env.update(
        PATH=f"{ssh.parent}{os.pathsep}{env['PATH']}",
        ANSIBLE_CONFIG=str(ws / "ansible.cfg"),
        ANSIBLE_HOME=str(ws / "home"),
        ANSIBLE_NOCOLOR="1",
        NO_COLOR="1",
    )
    return env


def close_masters(ws: Path) -> None:
    """End the shared connections Ansible leaves behind (ControlPersist), so every run starts cold, as skyplan's do."""
    for socket in (ws / "cp").glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "gateway"], capture_output=True, timeout=10)


def recap(output: str) -> dict[str, int]:
    """changed= per host from the PLAY RECAP."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)}

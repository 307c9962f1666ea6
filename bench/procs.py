"""Starting, probing and measuring the benchmark's processes (Linux /proc)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children), in seconds; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of one process so far (not its
    children): a thread that waits (epoll, a lock, the GIL) switches voluntarily, one the
    scheduler takes the CPU from (another process woke up on its core) involuntarily. (0, 0)
    once it is gone. Threads that ended earlier are not counted."""
    vol = invol = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        v, i = switches_in_status(text)
        vol += v
        invol += i
    return vol, invol


def switches_in_status(text: str) -> tuple[int, int]:
    """(voluntary, involuntary) context switches in a /proc/…/status text."""
    vol = invol = 0
    for line in text.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            vol = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            invol = int(line.split()[1])
    return vol, invol


def cpu_seconds(pid: int) -> float:
    """utime + stime of pid and its descendants, in seconds."""
    return sum(own_cpu_seconds(p) for p in [pid, *descendants(pid)])


def rss_mib(pid: int) -> float:
    """Resident memory of pid and its descendants (VmRSS), in MiB."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Service:
    name: str
    url: str
    proc: subprocess.Popen | None
    log: Path | None
    started: float = 0.0                  # time.monotonic() at spawn
    ready_seconds: float | None = None    # spawn until the probe first answered 200
    rss_ready_mib: float | None = None    # resident memory right then

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path,
          cwd: Path) -> Service:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Service(name, f"http://127.0.0.1:{port}", proc, log, time.monotonic())


def wait_ready(service: Service, probe_path: str, headers: dict[str, str], timeout: float = 30.0) -> str | None:
    """None once GET probe_path answers 200; otherwise why not."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if service.proc is not None and service.proc.poll() is not None:
            return f"exited with status {service.proc.returncode}"
        try:
            req = urllib.request.Request(service.url + probe_path, headers=headers)
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    service.ready_seconds = time.monotonic() - service.started
                    if service.proc is not None:
                        service.rss_ready_mib = rss_mib(service.proc.pid)
                    return None
                last = f"status {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.01)   # fine enough to tell a 0.3 s start from a 0.4 s one
    return f"not ready after {timeout:.0f}s ({last})"

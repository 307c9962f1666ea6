"""`aifw serve --workers N`: refused where per-process state would weaken the policy, else served."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from tests.serve_proc import free_port, stop_once_healthy

ROOT = Path(__file__).resolve().parent.parent


def _policy(tmp_path: Path, **extra) -> Path:
    policy = {"version": 1, "name": "workers",
              "upstreams": {"openai": {"provider": "openai", "baseUrl": "http://127.0.0.1:9/v1"}},
              "guards": {"access": {}}, **extra}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def _serve(path: Path, *args: str, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "AIFW_AUDIT_DIR": str(tmp_path / "audit")}
    return subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--policy", str(path), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_in_memory_limits_with_several_workers_are_refused(tmp_path):
    path = _policy(tmp_path, audit={"sink": "stdout"}, guards={"ratelimit": {
        "limits": [{"name": "r", "scope": "user", "requests": "10/second"}]}})
    proc = _serve(path, "--workers", "2", "--port", "0", tmp_path=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "in-memory rate-limit backend" in err and "redis" in err


def test_two_workers_share_the_port(tmp_path):
    port = free_port()
    proc = _serve(_policy(tmp_path, audit={"sink": "stdout"}), "--workers", "2", "--port", str(port),
                  tmp_path=tmp_path)
    err = stop_once_healthy(proc, port)
    assert proc.returncode == 0, err
    assert err.count("aifw listening on") == 2, err


# `aifw serve` with every policy compile written down (the pid that compiled, one line each)
_COUNTING = """
import os, sys
import proxy.reload
compile_policy = proxy.reload.compile_policy
def counted(*args, **kwargs):
    with open(os.environ["COMPILES"], "a") as out:
        out.write(f"{os.getpid()}\\n")
    return compile_policy(*args, **kwargs)
proxy.reload.compile_policy = counted
from proxy.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_workers_serve_the_policy_the_parent_compiled(tmp_path):
    """Forked after the start-up checks compiled the policy, the workers serve that compiled
    policy instead of compiling it again each (start time, memory shared with the parent)."""
    compiles = tmp_path / "compiles"
    port = free_port()
    env = {**os.environ, "AIFW_AUDIT_DIR": str(tmp_path / "audit"), "COMPILES": str(compiles)}
    proc = subprocess.Popen([sys.executable, "-c", _COUNTING, "serve", "--policy",
                             str(_policy(tmp_path, audit={"sink": "stdout"})), "--workers", "2",
                             "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = stop_once_healthy(proc, port)
    assert proc.returncode == 0, err
    assert err.count("aifw listening on") == 2, err
    assert compiles.read_text().split() == [str(proc.pid)]


# --- several workers with the file audit sink and with Redis limits ---------------------------------

KEY = "hmac:workers-key"


async def _spread(served, n: int, **headers) -> list[int]:
    """n requests, each on a new connection, so the kernel spreads them over the workers."""
    return [await served.chat(**headers) for _ in range(n)]


async def test_file_audit_sink_one_chain_per_worker(fake, tmp_path, capsys):
    from proxy.audit.signing import parse_key
    from proxy.audit.verify import verify
    from proxy.cli import main as cli_main
    from tests.serve_proc import Served, policy_file

    audit = tmp_path / "audit"
    served = Served(policy_file(tmp_path, fake), "--workers", "2",
                    env={"AIFW_AUDIT_SIGNING_KEY": KEY})
    await served.ready()
    statuses = await _spread(served, 40)
    code, _, err = await served.stop()
    assert code == 0, err
    assert statuses == [200] * 40
    w0 = sorted(audit.glob("audit-2*.jsonl"))
    w1 = sorted(audit.glob("audit-w1-*.jsonl"))
    assert w0 and w1, "each worker writes its own chain"
    for files in (w0, w1):                         # each chain verifies on its own
        res = verify([str(f) for f in files], parse_key(KEY))
        assert res.ok and res.records > 0, [str(p) for p in res.problems]
    res = verify([str(audit)], parse_key(KEY))     # and the directory checks both together
    assert res.ok and len(res.chains) == 2 and res.records == 40
    assert cli_main(["audit", "verify", str(audit), "--key", KEY]) == 0
    assert "2 chain(s)" in capsys.readouterr().out
    assert cli_main(["audit", "stats", str(audit), "--json"]) == 0
    import json
    assert json.loads(capsys.readouterr().out)["total"] == 40
    assert cli_main(["audit", "search", str(audit), "--json"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(found) == 40 and [r["time"] for r in found] == sorted(r["time"] for r in found)
    assert cli_main(["audit", "report", str(audit), "--html", str(tmp_path / "r.html")]) == 0
    assert "(40 records)" in capsys.readouterr().out
    # a chain renamed into the other one's place does not verify
    w1[0].rename(audit / w1[0].name.replace("audit-w1-", "audit-w2-"))
    res = verify([str(audit)], parse_key(KEY))
    assert not res.ok and "renamed" in " ".join(p.message for p in res.problems)


async def test_redis_limits_are_shared_by_two_workers(fake, tmp_path):
    from tests.limits.redis_server import RedisServer
    from tests.serve_proc import Served, policy_file

    with RedisServer() as redis_server:
        guards = {"access": {}, "ratelimit": {
            "backend": "redis", "redis": {"url": redis_server.url},
            "limits": [{"name": "shared", "scope": "global", "requests": "6/hour"}]}}
        served = Served(policy_file(tmp_path, fake, guards=guards), "--workers", "2")
        await served.ready()
        statuses = await _spread(served, 24)
        code, _, err = await served.stop()
    assert code == 0, err
    assert statuses.count(200) == 6 and statuses.count(429) == 18, statuses
    chains = {p.name.split("-")[1] if p.name.startswith("audit-w") else "w0"
              for p in (tmp_path / "audit").glob("audit-*.jsonl")}
    assert chains == {"w0", "w1"}, "both workers served (and counted against one limit)"


async def test_stdout_audit_sink_with_two_workers_verifies_as_two_chains(fake, tmp_path):
    """Both workers write their chains to one stdout pipe: lines never tear (whole-line writes
    of at most PIPE_BUF bytes) and verify follows each chain through the interleaving."""
    from proxy.audit.signing import parse_key
    from proxy.audit.verify import verify
    from tests.serve_proc import Served, policy_file

    collected = tmp_path / "collected.jsonl"
    served = Served(policy_file(tmp_path, fake, audit={"sink": "stdout", "level": "full"}),
                    "--workers", "2", env={"AIFW_AUDIT_SIGNING_KEY": KEY}, stdout=collected)
    await served.ready()
    statuses = [await served.chat("a longer prompt " * 40) for _ in range(30)]
    code, _, err = await served.stop()
    assert code == 0, err
    assert statuses == [200] * 30
    out = collected.read_text()
    res = verify([str(collected)], parse_key(KEY))
    assert res.ok, [str(p) for p in res.problems]
    assert len(res.chains) == 2 and res.records == 30
    lines = out.splitlines()
    del lines[len(lines) // 2]                       # one entry of the interleaved log removed
    collected.write_text("\n".join(lines) + "\n")
    assert not verify([str(collected)], parse_key(KEY)).ok

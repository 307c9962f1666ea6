"""`python -m proxy serve` as a real process: listens, answers, reloads on SIGHUP, stops on SIGTERM."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.e2e.helpers import MSG, oa, policy, readiness

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]


async def readyz(url: str) -> dict:
    return (await readiness(url))[1]


async def test_serve_healthz_and_sighup_reload(fake, tmp_path):
    data = yaml.safe_load(policy())
    data["upstreams"]["openai"]["baseUrl"] = fake.openai_url
    data["upstreams"]["anthropic"]["baseUrl"] = fake.url
    data["audit"] = {"path": str(tmp_path / "audit")}
    path = tmp_path / "policy.yaml"
    text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve", "--policy", str(path), "--port", "0", cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)   # the address goes to stderr
    try:
        url = None
        drain = None
        async with asyncio.timeout(60):
            while url is None:
                line = (await proc.stderr.readline()).decode()
                assert line, "the server exited before listening"
                m = re.search(r"aifw listening on (http://[^ ]+) with policy test", line)
                url = m and m.group(1)
        drain = asyncio.ensure_future(proc.stderr.read())   # keep the pipe from filling up
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/healthz") as r:
                assert r.status == 200 and (await r.json()) == {"status": "ok"}
                assert "x-aifw-request-id" in r.headers
        out = await oa(url + "/v1").chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert out.choices[0].message.content == "You said: hello there"
        # what the HTTP parser refuses is answered in the error shape by `aifw serve` too
        host, port = url.split("//")[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"Content-Length: 3\r\n\r\n{}")
        raw = await reader.read()
        writer.close()
        assert b" 400 " in raw.split(b"\r\n")[0] and b'"code":"invalid_request"' in raw
        assert b"x-aifw-request-id: req_" in raw.lower()
        before = await readyz(url)
        assert before["policy"]["name"] == "test"

        # An edit the file watcher cannot see (same inode, size and mtime): only SIGHUP finds it.
        st = os.stat(path)
        path.write_text(text.replace("name: test", "name: tesX"))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(path).st_size == st.st_size
        await asyncio.sleep(1.5)            # > one watcher poll: prove the watcher did not reload
        assert (await readyz(url))["policy"]["name"] == "test"
        proc.send_signal(signal.SIGHUP)
        async with asyncio.timeout(20):
            while (details := await readyz(url))["policy"]["name"] != "tesX":
                await asyncio.sleep(0.05)
        assert details["policy"]["digest"] != before["policy"]["digest"]
        assert details["reloads"]["ok"] == 1
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            drain.cancel()
    assert proc.returncode == 0


def test_serve_refuses_a_bad_policy(tmp_path):
    import subprocess
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nupstreams: {}\nbogus: 1\n")
    out = subprocess.run([sys.executable, "-m", "proxy", "serve", "--policy", str(bad), "--port", "0"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1
    assert f"{bad}:3: $.bogus: unknown key 'bogus'" in out.stderr

"""The HTML report renders in headless Chromium with no console errors.

Chromium is driven over the DevTools protocol (aiohttp websocket): exceptions, console errors
and browser log errors (CSP violations, failed loads) are collected while the page loads. A
control page with a broken script proves the collector sees errors. Skipped only when no
Chromium is installed and CI is not set; in CI a missing browser fails the test.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import aiohttp
import pytest

from proxy.cli import main as cli_main
from tests.audit.test_audit_report_contents import rich_log  # noqa: F401  (fixture)
from tests.audit.test_audit_review import log_dir  # noqa: F401  (fixture)

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                        "google-chrome")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--remote-debugging-port=0", "--window-size=1000,1400"]


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed")
    return CHROMIUM


class Browser:
    def __init__(self, binary, profile):
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.profile = profile

    async def page_ws(self) -> str:
        marker = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not os.path.exists(marker) or not open(marker).read().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start")
            await asyncio.sleep(0.1)
        port = open(marker).read().split()[0]
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    pages = [t for t in await resp.json() if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
                await asyncio.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def load(binary, profile, url, steps: tuple[str, ...] = ()) -> tuple[list[str], dict]:
    """Open ``url``, then evaluate each of ``steps`` (JavaScript run as the user would act, e.g.
    choosing a filter); return (errors seen, facts about the rendered page, with ``steps``: the
    value of each step)."""
    browser = Browser(binary, profile)
    try:
        ws_url = await browser.page_ws()
        errors: list[str] = []
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
            ids = iter(range(1, 10_000))
            pending: dict[int, asyncio.Future] = {}
            loaded = asyncio.get_running_loop().create_future()

            async def reader():
                async for msg in ws:
                    data = msg.json()
                    if "id" in data and data["id"] in pending:
                        pending.pop(data["id"]).set_result(data.get("result"))
                    method, params = data.get("method"), data.get("params", {})
                    if method == "Runtime.exceptionThrown":
                        errors.append("exception: " + params["exceptionDetails"].get("text", ""))
                    elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                        errors.append("console: " + str(params.get("args")))
                    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                        errors.append("log: " + params["entry"].get("text", ""))
                    elif method == "Page.loadEventFired" and not loaded.done():
                        loaded.set_result(True)

            async def call(method, **params):
                i = next(ids)
                pending[i] = asyncio.get_running_loop().create_future()
                await ws.send_json({"id": i, "method": method, "params": params})
                return await asyncio.wait_for(pending[i], 30)

            task = asyncio.create_task(reader())
            for domain in ("Runtime", "Log", "Page"):
                await call(f"{domain}.enable")
            await call("Page.navigate", url=url)
            await asyncio.wait_for(loaded, 30)
            await asyncio.sleep(0.5)       # late console messages
            result = await call("Runtime.evaluate", returnByValue=True, expression="""({
                svgs: document.querySelectorAll('svg.chart').length,
                drawn: [...document.querySelectorAll('svg.chart')].filter(
                    s => s.getBoundingClientRect().width > 100 && s.getBoundingClientRect().height > 20).length,
                bars: document.querySelectorAll('svg.chart rect').length,
                title: document.title,
                h2: [...document.querySelectorAll('h2')].map(h => h.textContent)})""")
            facts = result["result"].get("value", {})
            facts["steps"] = []
            for step in steps:
                out = await call("Runtime.evaluate", returnByValue=True, expression=step)
                facts["steps"].append(out["result"].get("value"))
            await asyncio.sleep(0.2)       # errors a step caused
            task.cancel()
        return errors, facts
    finally:
        browser.stop()


async def test_report_renders_without_console_errors(chromium, log_dir, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "report.html"
    assert cli_main(["audit", "report", str(log_dir), "--html", str(out)]) == 0
    errors, page = await load(chromium, str(tmp_path / "profile"), out.as_uri())
    assert errors == []
    assert page["title"] == "aifw audit report"
    assert page["svgs"] >= 5 and page["drawn"] == page["svgs"] and page["bars"] > 20
    assert "Traffic and blocks over time" in page["h2"]


async def test_the_error_collector_sees_errors(chromium, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction()</script>"
                   "<script>console.error('boom')</script></body></html>")
    errors, _ = await load(chromium, str(tmp_path / "profile"), bad.as_uri())
    assert any(e.startswith("exception") for e in errors)
    assert any(e.startswith("console") for e in errors)


VISIBLE = "[...document.querySelectorAll('#exchanges tbody tr')].filter(r => !r.hidden).length"


def choose(name: str, value: str) -> str:
    """Pick an option of a filter as a user does (the select changes, then fires 'change')."""
    return (f"(() => {{ const s = document.getElementById('filter-{name}'); s.value = {value!r}; "
            f"s.dispatchEvent(new Event('change', {{bubbles: true}})); return {VISIBLE}; }})()")


async def test_report_filters_change_the_visible_rows(chromium, rich_log, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "report.html"
    assert cli_main(["audit", "report", str(rich_log), "--html", str(out)]) == 0
    errors, page = await load(chromium, str(tmp_path / "profile"), out.as_uri(), steps=(
        VISIBLE,
        choose("decision", "blocked"),
        choose("caller", "alice via team-key (fp_3b1c9e)"),
        "document.getElementById('shown').textContent",
        "document.getElementById('reset').click(); " + VISIBLE,
        choose("rule", "ratelimit.requests.per_user"),
        "document.getElementById('reset').click(); " + choose("model", "gpt-4o"),
    ))
    assert errors == []
    # 12 rows; blocked: 3 security blocks + 2 refusals, of which alice's one; reset; the two
    # refusals; reset, then half the rows are gpt-4o
    assert page["steps"] == [12, 5, 1, "1", 12, 2, 6]
    assert "Exchanges" in page["h2"] and "Policies in force" in page["h2"]

"""bench.workers and its parts (wrk script, nginx config, result parsing, the report): what they
generate and read, without running wrk or timing anything."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess

import orjson
import pytest

from bench import nginx_upstream, workers, wrk
from bench.bodies import BODIES, UNIQUE, body
from bench.workloads import AUTH

LONG = re.compile(r"\[(=*)\[(.*?)\]\1\]", re.S)


def lua_literals(text: str) -> list[str]:
    return [m.group(2) for m in LONG.finditer(text)]


# --- wrk: the Lua script ------------------------------------------------------------------------

def test_lua_string_picks_a_level_the_text_does_not_close():
    assert wrk.lua_string("plain") == "[[plain]]"
    assert wrk.lua_string('{"a":[[1]]}') == '[=[{"a":[[1]]}]=]'
    assert wrk.lua_string("x]=]y]]") == "[==[x]=]y]]]==]"
    for text in ("plain", '{"a":[[1]]}', "x]=]y]]", "]]]=]]==]"):
        assert lua_literals(wrk.lua_string(text)) == [text]
    with pytest.raises(ValueError):
        wrk.lua_string("\nleading newline")


@pytest.mark.parametrize("name", sorted(BODIES))
def test_script_rebuilds_the_body_with_a_number_per_request(name):
    sent = body(BODIES[name])
    script = wrk.lua_script(sent, AUTH)
    parts_line = next(line for line in script.splitlines() if line.startswith("local parts"))
    parts = lua_literals(parts_line)
    assert len(parts) == sent.count(UNIQUE) + 1 >= 2
    rebuilt = "123".join(parts)
    assert rebuilt == sent.replace(UNIQUE, "123")
    assert orjson.loads(rebuilt)["model"] == "gpt-4o-mini"
    assert "local unique = true" in script
    # numbered per request from the seed, the thread and a count: digits only, fixed width
    assert 'string.format("%d%02d%09d", seed, tid, n)' in script
    assert 'wrk.method = "POST"' in script
    headers = dict(re.findall(r"wrk\.headers\[ \[\[(.*?)\]\] \] = \[\[(.*?)\]\]", script))
    assert headers == {"content-type": "application/json", **AUTH}


def test_script_without_a_marker_sends_one_fixed_request():
    script = wrk.lua_script('{"model":"m","messages":[]}', {})
    assert "local unique = false" in script
    assert lua_literals(script.split("local parts = ", 1)[1].split("\n", 1)[0]) == ['{"model":"m","messages":[]}']


def test_command_passes_the_seed_to_the_script():
    cmd = wrk.command("http://127.0.0.1:1/v1/chat/completions", "s.lua", 16, 5, seed=42)
    assert cmd[:1] == ["wrk"] and cmd[-2:] == ["--", "42"]
    assert cmd[cmd.index("-c") + 1] == "16" and cmd[cmd.index("-d") + 1] == "5s"
    assert cmd[cmd.index("-s") + 1] == "s.lua"


# --- wrk: its output ----------------------------------------------------------------------------

OUTPUT = """Running 5s test @ http://127.0.0.1:40000/v1/chat/completions
  1 threads and 16 connections
  11341 requests in 5.00s, 1.81MB read
Requests/sec:   2268.20
WRK {"requests":11341,"duration_us":5000000,"connect":0,"read":2,"write":0,"status":41,"timeout":1,"p50_us":6930,"p90_us":9000,"p99_us":19650}
"""


def test_parse_reads_the_done_hook_line():
    r = wrk.parse(OUTPUT)
    assert r.requests == 11341 and r.seconds == 5.0
    assert r.bad_status == 41 and r.socket_errors == 3 and r.errors == 44
    assert r.rps == pytest.approx((11341 - 41) / 5.0)
    assert (r.p50_ms, r.p90_ms, r.p99_ms) == (6.93, 9.0, 19.65)


def test_parse_without_a_result_says_what_wrk_printed():
    with pytest.raises(ValueError, match="unable to connect"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


# --- nginx: the fake provider -------------------------------------------------------------------

def test_nginx_answer_is_a_chat_completion_with_a_new_text_per_request(tmp_path):
    conf = nginx_upstream.config(tmp_path, 18123)
    assert "listen 127.0.0.1:18123" in conf and "master_process off;" in conf
    assert f"pid {tmp_path.resolve()}/nginx.pid;" in conf
    returns = re.findall(r"return 200 '(.*?)';", conf)
    assert len(returns) == 2
    chat = orjson.loads(returns[0].replace("$request_id", "0" * 32))
    assert chat["object"] == "chat.completion" and chat["choices"][0]["finish_reason"] == "stop"
    assert "0" * 32 in chat["choices"][0]["message"]["content"]
    assert returns[0].count("$") == returns[0].count("$request_id") == 2   # the id and the text
    assert orjson.loads(returns[1])["data"][0]["id"] == "gpt-4o-mini"
    assert "default_type application/json;" in conf


def test_nginx_refuses_an_answer_it_would_mangle():
    for doc in ({"text": "it's"}, {"text": "a\\b"}, {"text": "$host"}):
        with pytest.raises(ValueError):
            nginx_upstream._quoted(doc)


@pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists(nginx_upstream.SBIN),
                    reason="nginx not installed (make bench-deps)")
def test_nginx_accepts_the_config(tmp_path):
    conf = nginx_upstream.write_config(tmp_path, 18123)
    cmd = nginx_upstream.command(tmp_path, conf) + ["-t"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- bench.workers: reading /proc and the audit directory ---------------------------------------

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1002 1
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1003 1
   3: 0100007F:1F90 0100007F:D432 06 00000000:00000000 00:00000000 00000000     0        0 0 1
   4: 0100007F:1F91 0100007F:D433 01 00000000:00000000 00:00000000 00000000     0        0 1004 1
"""


def test_socket_inodes_are_the_established_server_side_of_the_port():
    # port 0x1F90 = 8080: listening (0A), the client's end (local D431) and TIME_WAIT (06) are not
    assert workers.socket_inodes(8080, TCP) == {"1002"}


def test_connections_per_pid_counts_this_process_accepted_sockets():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            assert workers.connections_per_pid([os.getpid()], port) == [3]
        finally:
            for s in clients + accepted:
                s.close()


def test_chain_records_counts_entries_per_worker_chain(tmp_path):
    (tmp_path / "audit-20261206T090000Z-0000000001.jsonl").write_text("{}\n{}\n")
    (tmp_path / "audit-20261206T090500Z-0000000002.jsonl").write_text("{}\n")
    (tmp_path / "audit-w1-20261206T090000Z-0000000001.jsonl").write_text("{}\n{}\n{}\n{}\n")
    (tmp_path / "other.json").write_text("{}\n")
    assert workers.chain_records(tmp_path) == {"w0": 3, "w1": 4}


# --- bench.workers: the report -----------------------------------------------------------------

def _segment(target, rps, connections=16, cpu=None, idle=0.1, spread=(), switches=None):
    seconds = 5.0
    return workers.Segment(target, connections, rps, int(rps * seconds), 0, 5.0, 20.0,
                           cpu or {target: rps * seconds * 0.0007, "nginx": 0.1, "wrk": 0.1},
                           idle, seconds, list(spread), switches or {})


def test_verdict_is_the_median_of_per_round_ratios():
    segs = []
    for one, two in ((1000, 1800), (1200, 1900), (900, 1700)):   # ratios 1.80, 1.58, 1.89
        segs += [_segment(workers.ONE, one), _segment(workers.TWO, two)]
    (line,) = workers.verdicts(segs)
    assert "1.80×" in line and "**PASS**" in line
    segs[-1] = _segment(workers.TWO, 1300)                       # ratios 1.80, 1.58, 1.44
    (line,) = workers.verdicts(segs)
    assert "1.58×" in line and "**FAIL**" in line


def test_verdict_gives_the_ceiling_the_load_tools_leave():
    # two workers at 0.7 ms of CPU per request, wrk and nginx 0.2 s per 9,000 requests
    segs = [_segment(workers.ONE, 1000), _segment(workers.TWO, 1800)]
    (line,) = workers.verdicts(segs, ncpu=2)
    tools_ms = 0.2 / 9000 * 1000
    ceiling = 2 / (0.7 + tools_ms) * 1000
    assert f"wrk and nginx at {tools_ms * 1000:.0f} µs per request" in line
    assert f"2 CPUs can serve at most {ceiling:.0f} req/s with two workers ({ceiling / 1000:.2f}× " in line


def test_report_shows_cpu_split_idle_and_connection_spread():
    two_cpu = {f"{workers.TWO}/w0": 3.5, f"{workers.TWO}/w1": 3.3, f"{workers.TWO}/parent": 0.0,
               "nginx": 0.2, "wrk": 0.3}
    segs = [_segment(workers.PASS, 4000), _segment(workers.ONE, 1000, switches={workers.ONE: (50, 250)}),
            _segment(workers.TWO, 1900, cpu=two_cpu, idle=0.0, spread=(11, 5),
                     switches={f"{workers.TWO}/w0": (10, 4000), f"{workers.TWO}/w1": (9, 3600),
                               f"{workers.TWO}/parent": (1, 0)})]
    layout = workers.layouts(2)["none"]
    text = workers.report(segs, layout, 1, 5, "chat1k", ((1.0, 1.0, 1.0), (2.0, 1.0, 1.0)),
                          "2026-12-06 09:00", {workers.TWO: {"w0": 10, "w1": 12}})
    row = next(line for line in text.splitlines() if line.startswith(f"| 16 | {workers.TWO} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "1900" and cells[4] == "1.90×"
    assert cells[6] == f"{6.8 / (1900 * 5) * 1000:.3f}"      # both workers' CPU per request
    assert cells[7] == f"{6.8 / 5:.2f}" and cells[8] == "0.10"
    assert cells[9] == f"{2 - 7.3 / 5:.2f}"                  # what the rest of the machine took
    assert cells[11] == "11/5"
    assert "w0 3.50, w1 3.30, parent 0.00" in text
    assert f"{workers.TWO} w0 10, w1 12" in text
    assert "Load average at the start 1.00, 1.00, 1.00" in text
    # medians of 0.1 s / 20,000, 0.1 s / 5,000 and 0.2 (wrk 0.3) s / 9,500 requests
    assert "nginx 20 µs, wrk 20 µs" in text
    # per request over 5,000 and 9,500 requests, the parent's and both workers' summed; no
    # figure for a segment that recorded none
    assert f"- c=16: {workers.ONE} 0.010 / 0.050, {workers.TWO} {20 / 9500:.3f} / {7600 / 9500:.3f}\n" in text


def test_switches_in_status_reads_both_counts():
    from bench import procs
    text = ("Name:\tpython\nThreads:\t2\nvoluntary_ctxt_switches:\t1234\n"
            "nonvoluntary_ctxt_switches:\t56\n")
    assert procs.switches_in_status(text) == (1234, 56)
    assert procs.switches_in_status("Name:\tx\n") == (0, 0)


def test_context_switches_count_every_thread_of_a_process():
    import threading
    import time
    from bench import procs
    sleeps = 20
    slept, stop = threading.Event(), threading.Event()

    def run():
        for _ in range(sleeps):
            time.sleep(0.001)          # each sleep gives up the CPU: a voluntary switch
        slept.set()
        stop.wait()
    vol0, invol0 = procs.context_switches(os.getpid())
    thread = threading.Thread(target=run)
    thread.start()
    try:
        slept.wait()
        vol1, invol1 = procs.context_switches(os.getpid())
    finally:
        stop.set()
        thread.join()
    assert vol1 - vol0 >= sleeps                  # the other thread's, not only this one's
    assert invol1 >= invol0
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert procs.context_switches(gone.pid) == (0, 0)


def test_layouts_say_where_everything_runs():
    split = workers.layouts(2)["split"]
    assert split.tools == {1} and split.proxy == {0} and split.workers == ({0}, {1})
    assert "wrk and nginx on CPU 1" in split.describe()
    assert workers.layouts(1).keys() == {"none"}


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="no autogroups")
def test_boost_gives_the_autogroup_niceness_back():
    now = os.getpriority(os.PRIO_PROCESS, 0)
    group = open("/proc/self/autogroup").read()
    before, problem = workers.boost(now)          # the same niceness: changes nothing
    if problem:
        pytest.skip(problem)
    assert before == group.split()[-1]
    workers.unboost(before)
    assert open("/proc/self/autogroup").read() == group
    assert "autogroup niceness " + before in workers.priority()


def test_pin_sets_every_thread_of_a_process():
    import threading
    ready, stop = threading.Event(), threading.Event()
    tids = []

    def run():
        tids.append(threading.get_native_id())
        ready.set()
        stop.wait()
    thread = threading.Thread(target=run)
    thread.start()
    ready.wait()
    before = os.sched_getaffinity(0)
    one = frozenset({min(before)})
    try:
        workers._pin(os.getpid(), one)
        assert os.sched_getaffinity(0) == one and os.sched_getaffinity(tids[0]) == one
    finally:
        workers._pin(os.getpid(), frozenset(before))
        stop.set()
        thread.join()
    assert os.sched_getaffinity(0) == before

"""Turning pooled segment results into numbers, ratios and the Markdown report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.targets import AIFW, ALL_GUARDS, DEFAULT, DEFAULT_ASYNCIO, DIRECT, NOSCAN, PASSTHROUGH

# The issue's targets: (workload, what is compared, limit). The first name a run has is used
# (bench.run's bodies, or the older single chat body other benches still send).
RPS_WORKLOADS, LATENCY_WORKLOADS, TTFB_WORKLOAD = ("chat1k c=16", "chat c=16"), ("chat1k c=1", "chat c=1"), "stream50 c=1"
# Issue 14: CPU per request of the 1 KB chat (16 connections) as a multiple of the pass-through's.
CPU_LIMITS = {NOSCAN: 1.3, DEFAULT: 2.0, DEFAULT_ASYNCIO: 2.0, ALL_GUARDS: 3.0}
CONVERSATION_LIMIT = 1.5      # conv20's CPU per request at most this many chat1k's
READY_LIMIT, RSS_LIMIT = 1.0, 100.0   # seconds to ready; MiB after start (default.yaml)


@dataclass
class Pool:
    """Everything measured for one (target, workload) across all rounds."""

    count: int = 0
    sent: int = 0  # including warm-up and failed requests, for CPU per request
    errors: int = 0
    elapsed: float = 0.0
    cpu: float | None = None
    latency_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)

    def add(self, result: dict, cpu: float | None) -> None:
        self.count += result["count"]
        self.sent += result["count"] + result["warmup"] + result["errors"]
        self.errors += result["errors"]
        self.elapsed += result["elapsed"]
        self.latency_ms += result["latency_ms"]
        self.ttfb_ms += result["ttfb_ms"]
        if cpu is not None:
            self.cpu = (self.cpu or 0.0) + cpu

    @property
    def rps(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_ms_per_request(self) -> float | None:
        return None if self.cpu is None or not self.sent else self.cpu / self.sent * 1000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def table(pools: dict[str, dict[str, Pool]], workloads: list[str], streamed: set[str]) -> str:
    head = ("| workload | target | req/s | ÷ pass | p50 ms | +p50 vs direct | p99 ms | +p99 vs direct "
            "| TTFB p50 ms | +TTFB vs direct | CPU ms/req | ÷ pass | errors |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for w in workloads:
        direct, passthrough = pools.get(DIRECT, {}).get(w), pools.get(PASSTHROUGH, {}).get(w)
        for name, per in pools.items():
            p = per.get(w)
            if p is None:
                continue
            p50, p99 = percentile(p.latency_ms, 0.5), percentile(p.latency_ms, 0.99)
            t50 = percentile(p.ttfb_ms, 0.5) if w in streamed else None
            d50 = percentile(direct.latency_ms, 0.5) if direct else None
            d99 = percentile(direct.latency_ms, 0.99) if direct else None
            dt = percentile(direct.ttfb_ms, 0.5) if direct and w in streamed else None
            lines.append("| " + " | ".join([
                w, name, _f(p.rps, "{:.0f}"), _f(_ratio(p.rps, passthrough.rps if passthrough else None)),
                _f(p50), _f(p50 - d50 if d50 is not None else None, "{:+.2f}"),
                _f(p99), _f(p99 - d99 if d99 is not None else None, "{:+.2f}"),
                _f(t50), _f(t50 - dt if t50 is not None and dt is not None else None, "{:+.2f}"),
                _f(p.cpu_ms_per_request, "{:.3f}"),
                _f(_ratio(p.cpu_ms_per_request, passthrough.cpu_ms_per_request if passthrough else None)),
                str(p.errors)]) + " |")
    return "\n".join(lines)


def target_checks(pools: dict[str, dict[str, Pool]], subject: str = AIFW) -> list[str]:
    """The issue's three targets for `subject`, each with the measured value and verdict."""
    get = lambda name, w: pools.get(name, {}).get(w)  # noqa: E731
    checks = []

    rps_workload = next((w for w in RPS_WORKLOADS if get(PASSTHROUGH, w)), RPS_WORKLOADS[0])
    latency_workload = next((w for w in LATENCY_WORKLOADS if get(DIRECT, w)), LATENCY_WORKLOADS[0])
    a, f = get(subject, rps_workload), get(PASSTHROUGH, rps_workload)
    if a and f and f.rps:
        r = a.rps / f.rps
        checks.append(f"- {subject} req/s at 16 connections ≥ 60% of pass-through: {r:.0%} "
                      f"({a.rps:.0f} vs {f.rps:.0f}) **{'PASS' if r >= 0.6 else 'FAIL'}**")
    for workload, series, label in ((latency_workload, "latency_ms", "p50 latency at 1 connection"),
                                    (TTFB_WORKLOAD, "ttfb_ms", "time to first byte (50-chunk stream, p50)")):
        a, d, f = get(subject, workload), get(DIRECT, workload), get(PASSTHROUGH, workload)
        if not (a and d):
            continue
        added = percentile(getattr(a, series), 0.5) - percentile(getattr(d, series), 0.5)
        verdict = f"**{'PASS' if added <= 1.0 else 'FAIL'} vs direct"
        over_floor = ""
        if f:
            # The bare pass-through pays the extra hop too: what aifw's own work adds is the
            # difference to it, reported next to the figure against direct.
            over = percentile(getattr(a, series), 0.5) - percentile(getattr(f, series), 0.5)
            floor = percentile(getattr(f, series), 0.5) - percentile(getattr(d, series), 0.5)
            over_floor = f" ({over:+.2f} ms over the pass-through, which itself adds {floor:+.2f} ms)"
            verdict += f"; {'PASS' if over <= 1.0 else 'FAIL'} over the pass-through"
        checks.append(f"- {subject} added {label} ≤ 1 ms: {added:+.2f} ms vs direct{over_floor} {verdict}**")
    return checks


@dataclass
class Start:
    ready_seconds: float | None     # spawn until the first proxied request answered 200
    rss_ready_mib: float | None     # resident memory then
    rss_end_mib: float | None       # and after the whole run


def start_table(starts: dict[str, Start]) -> str:
    lines = ["| target | ready after s | RSS at ready MiB | RSS at the end MiB |", "|---|---|---|---|"]
    for name, st in starts.items():
        lines.append(f"| {name} | {_f(st.ready_seconds)} | {_f(st.rss_ready_mib, '{:.0f}')} "
                     f"| {_f(st.rss_end_mib, '{:.0f}')} |")
    return "\n".join(lines)


def _verdict(value: float | None, limit: float) -> str:
    return "–" if value is None else ("**PASS**" if value <= limit else "**FAIL**")


def issue_summary(pools: dict[str, dict[str, Pool]], starts: dict[str, Start]) -> str:
    """Issue 14's table: per target, the 1 KB chat's CPU per request against the pass-through's,
    the other bodies' and the start; then the targets with PASS/FAIL."""
    get = lambda name, w: pools.get(name, {}).get(w)  # noqa: E731
    bare = get(PASSTHROUGH, "chat1k c=16")
    if bare is None or not bare.cpu_ms_per_request:
        return ""
    bare_cpu = {b: getattr(get(PASSTHROUGH, f"{b} c=16"), "cpu_ms_per_request", None)
                for b in ("chat1k", "conv20", "rag4k")}
    head = ("| target | chat1k CPU ms/req (c=16) | × pass CPU | req/s c=1 / 16 / 64 | +p50 / +p99 ms vs "
            "direct (c=1) | conv20 × pass CPU | conv20 ÷ chat1k CPU | rag4k × pass CPU | RSS MiB | ready s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    checks = []
    direct = get(DIRECT, "chat1k c=1")
    for name in pools:
        if name == DIRECT:
            continue
        chat = get(name, "chat1k c=16")
        if chat is None:
            continue
        cpu = chat.cpu_ms_per_request
        ratio = _ratio(cpu, bare_cpu["chat1k"])
        rps = " / ".join(_f(getattr(get(name, f"chat1k c={c}"), "rps", None), "{:.0f}") for c in (1, 16, 64))
        one = get(name, "chat1k c=1")
        added = "–"
        if one is not None and direct is not None:
            added = (f"{percentile(one.latency_ms, 0.5) - percentile(direct.latency_ms, 0.5):+.2f} / "
                     f"{percentile(one.latency_ms, 0.99) - percentile(direct.latency_ms, 0.99):+.2f}")
        conv, rag = get(name, "conv20 c=16"), get(name, "rag4k c=16")
        conv_cpu = conv.cpu_ms_per_request if conv else None
        conv_per_chat = _ratio(conv_cpu, cpu)
        st = starts.get(name)
        lines.append("| " + " | ".join([
            name, _f(cpu, "{:.3f}"), _f(ratio), rps, added,
            _f(_ratio(conv_cpu, bare_cpu["conv20"])), _f(conv_per_chat),
            _f(_ratio(rag.cpu_ms_per_request if rag else None, bare_cpu["rag4k"])),
            _f(st.rss_ready_mib if st else None, "{:.0f}"), _f(st.ready_seconds if st else None)]) + " |")
        if name in CPU_LIMITS:
            checks.append(f"- {name}: chat1k CPU {_f(ratio)}× the pass-through's (≤ {CPU_LIMITS[name]}×) "
                          f"{_verdict(ratio, CPU_LIMITS[name])}; conv20 {_f(conv_per_chat)}× chat1k "
                          f"(≤ {CONVERSATION_LIMIT}×) {_verdict(conv_per_chat, CONVERSATION_LIMIT)}; ready "
                          f"after {_f(st.ready_seconds if st else None)} s (≤ {READY_LIMIT:g} s) "
                          f"{_verdict(st.ready_seconds if st else None, READY_LIMIT)}"
                          + (f"; RSS {_f(st.rss_ready_mib if st else None, '{:.0f}')} MiB (≤ {RSS_LIMIT:g}) "
                             f"{_verdict(st.rss_ready_mib if st else None, RSS_LIMIT)}" if name == DEFAULT else ""))
    uv, plain = get(DEFAULT, "chat1k c=16"), get(DEFAULT_ASYNCIO, "chat1k c=16")
    if uv and plain and uv.cpu_ms_per_request and plain.cpu_ms_per_request:
        checks.append(f"- uvloop ({DEFAULT} vs {DEFAULT_ASYNCIO}, chat1k c=16): CPU per request "
                      f"{uv.cpu_ms_per_request / plain.cpu_ms_per_request:.2f}×, req/s "
                      f"{_f(_ratio(uv.rps, plain.rps))}×")
    return "\n".join(lines) + ("\n\n" + "\n".join(checks) if checks else "")

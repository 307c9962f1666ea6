"""Running the proxy: one process, or several workers sharing the port (SO_REUSEPORT)."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from .app import create_app
from .policy.compile import PolicyError
from .reload import PolicyHolder
from .runtime import attach_subsystems, check_workers
from .server import make_runner
from .telemetry.logs import route_uncaught

log = logging.getLogger("aifw")


async def _serve(policy_path: str, host: str | None, port: int | None, reuse_port: bool,
                 ready: asyncio.Event | None = None, holder: PolicyHolder | None = None) -> None:
    holder = holder or PolicyHolder(policy_path)
    attach_subsystems(holder, logging=True)
    route_uncaught()
    policy = holder.policy
    if policy.identity.fingerprint_secret_random and policy.identity.mode == "passthrough":
        log.warning("identity.fingerprintSecret is not set: caller fingerprints are stable for this "
                    "process only (set AIFW_FINGERPRINT_SECRET)")
    app = create_app(holder)
    runner = make_runner(app, policy)
    await runner.setup()
    site = web.TCPSite(runner, host or policy.server.host, port if port is not None else policy.server.port,
                       reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    # a log line on stderr: stdout may carry the audit log (audit sink stdout)
    log.info(f"aifw listening on {site.name} with policy {policy.name} ({policy.path}, {policy.digest}); "
             f"event loop {type(asyncio.get_running_loop()).__module__.split('.')[0]}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining streams and the audit queue")
    await runner.cleanup()


LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str = "auto"):
    """The event loop ``aifw serve`` runs on: uvloop when it is installed (``aifw[speed]``; the
    Docker image has it) unless ``asyncio`` is asked for; None is asyncio's own loop."""
    if choice not in LOOPS:
        raise ValueError(f"unknown event loop {choice!r}; choose one of {', '.join(LOOPS)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError("the uvloop event loop is not installed: pip install 'aifw[speed]'") from None
        return None
    return uvloop.new_event_loop


def _run(coro, factory) -> None:
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


def serve(policy_path: str, host: str | None, port: int | None, workers: int = 1,
          loop: str = "auto") -> int:
    try:
        factory = loop_factory(loop)
    except ValueError as exc:
        print(f"aifw: {exc}", file=sys.stderr)
        return 1
    try:
        holder_check = PolicyHolder(policy_path)
    except PolicyError as exc:
        print(f"aifw: cannot start, the policy has problems:\n{exc}", file=sys.stderr)
        return 1
    problem = check_workers(holder_check.policy, workers)
    if problem:
        print(f"aifw: {problem}", file=sys.stderr)
        return 1
    if workers <= 1:
        # the policy checked above is the one served: compiled once
        _run(_serve(policy_path, host, port, reuse_port=False, holder=holder_check), factory)
        return 0
    del holder_check
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                _run(_serve(policy_path, host, port, reuse_port=True), factory)
            finally:
                os._exit(0)
        children.append(pid)

    def forward(signum, frame):
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status

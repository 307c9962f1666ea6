"""Running the proxy: one process, or several workers sharing the port (SO_REUSEPORT).

Start-up order matters for the audit log: everything that can fail (the policy, the worker
checks, the listening sockets, the signing key) is done before any audit chain is opened, so a
failed start leaves no ``open`` entry without its close behind (which verify would otherwise
have to call an unclean end). A failed start is one line on stderr and exit status 1.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys

from aiohttp import web

from .app import create_app
from .audit.sinks import ChainBusy
from .policy.compile import PolicyError
from .reload import PolicyHolder
from .runtime import attach_subsystems, check_workers
from .server import make_runner
from .telemetry.logs import route_uncaught

log = logging.getLogger("aifw")

BACKLOG = 1024


class StartError(Exception):
    """A start-up problem, told to the operator as one line."""


_stop_requested = False


def _early_stop(signum, frame) -> None:
    """SIGTERM/SIGINT before the event loop takes over: remembered, then honoured as soon as
    the server is up, so a stop during start-up still closes the audit chain cleanly."""
    global _stop_requested
    _stop_requested = True


def _catch_early_stops() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _early_stop)


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one address (SO_REUSEPORT when more than one: the kernel
    spreads connections over the workers). All are bound here, before any worker starts."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(info[4])
            sock.listen(BACKLOG)
            sock.setblocking(False)
            port = sock.getsockname()[1]      # port 0: the others join the port the first got
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise StartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets


async def _serve(policy_path: str, sock: socket.socket, worker: int = 0, workers: int = 1,
                 holder: PolicyHolder | None = None) -> None:
    holder = holder or PolicyHolder(policy_path)
    attach_subsystems(holder, logging=True, worker=worker, workers=workers)
    route_uncaught()
    policy = holder.policy
    if policy.identity.fingerprint_secret_random and policy.identity.mode == "passthrough":
        log.warning("identity.fingerprintSecret is not set: caller fingerprints are stable for this "
                    "process only (set AIFW_FINGERPRINT_SECRET)")
    app = create_app(holder)
    runner = make_runner(app, policy)
    try:
        await runner.setup()              # opens the audit chain (on_startup)
    except ChainBusy as exc:
        await runner.cleanup()
        raise StartError(str(exc)) from None
    # Everything built so far (modules, the compiled policy, the app) lives as long as the
    # process: moved out of the collector's reach, the full collections that serving triggers
    # now and then no longer walk it.
    gc.freeze()
    site = web.SockSite(runner, sock)
    await site.start()
    # a log line on stderr: stdout may carry the audit log (audit sink stdout)
    log.info(f"aifw listening on {site.name} with policy {policy.name} ({policy.path}, {policy.digest}); "
             f"event loop {type(asyncio.get_running_loop()).__module__.split('.')[0]}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if _stop_requested:
        stop.set()
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


def _prepare(policy_path: str, host: str | None, port: int | None,
             workers: int) -> tuple[PolicyHolder, list[socket.socket]]:
    """Every start-up check that needs no audit chain; the compiled policy and the sockets."""
    try:
        holder = PolicyHolder(policy_path)
    except PolicyError as exc:
        raise StartError(f"the policy has problems:\n{exc}") from None
    policy = holder.policy
    problem = check_workers(policy, workers)
    if problem:
        raise StartError(problem)
    from .audit.runtime import load_signer
    audit = policy.sections.get("audit")
    if audit is not None and audit.enabled:
        try:
            load_signer(audit)
        except ValueError as exc:
            raise StartError(str(exc)) from None
    return holder, bind_sockets(host or policy.server.host,
                                port if port is not None else policy.server.port, max(workers, 1))


def _run_worker(policy_path: str, sock: socket.socket, worker: int, workers: int, factory,
                holder: PolicyHolder | None = None) -> int:
    _catch_early_stops()
    try:
        _run(_serve(policy_path, sock, worker, workers, holder), factory)
    except StartError as exc:
        print(f"aifw: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def serve(policy_path: str, host: str | None, port: int | None, workers: int = 1,
          loop: str = "auto") -> int:
    try:
        factory = loop_factory(loop)
        holder, sockets = _prepare(policy_path, host, port, workers)
    except (StartError, ValueError) as exc:
        print(f"aifw: cannot start: {exc}", file=sys.stderr)
        return 1
    if workers <= 1:
        # the policy checked above is the one served: compiled once
        return _run_worker(policy_path, sockets[0], 0, 1, factory, holder)
    # ... and with several workers too: each inherits it through fork instead of compiling it
    # again (start time, and memory: the compiled rules, the model and the modules stay pages
    # shared with the parent). Nothing has started a thread or an event loop yet (both come in
    # _serve, after the fork). Frozen first, so no collection in any process writes to them; the
    # parent keeps its reference and never touches it again.
    gc.freeze()
    children: list[int] = []

    def forward(signum, frame):
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass
    # before the first fork: a signal that arrives meanwhile reaches the children started so far
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)
    for index, sock in enumerate(sockets):
        pid = os.fork()
        if pid == 0:
            children.clear()           # the inherited forwarding handler must reach no sibling
            code = 1
            try:
                for other in sockets:
                    if other is not sock:
                        other.close()
                code = _run_worker(policy_path, sock, index, workers, factory, holder)
            finally:
                os._exit(code)
        children.append(pid)
    for sock in sockets:
        sock.close()
    status = 0
    running = set(children)
    while running:
        pid, code = os.wait()
        running.discard(pid)
        code = os.waitstatus_to_exitcode(code)
        if code and not status and running:
            # a worker that could not start (or died) takes the others down: a half-running
            # server would look healthy while serving a fraction of its capacity
            for other in running:
                try:
                    os.kill(other, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        status = status or code
    return status

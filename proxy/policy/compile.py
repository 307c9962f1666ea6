"""Policy files -> validated, compiled, immutable runtime objects.

Compiling happens at start and on reload only. A file with problems yields no Policy, only the
list of problems, so the caller keeps the last good policy running.
"""
from __future__ import annotations

import copy
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import secretenv
from ..durations import parse_duration, parse_size
from ..globs import GlobSet
from ..guards import GUARDS
from ..guards.base import CompileContext, Guard, overrides
from ..keys import EMPTY_KEYSTORE, KeyStore, load_keys
from ..resilience.config import BreakerPolicy, compile_breaker, compile_defaults
from ..resilience.routes import Route, compile_route
from ..resilience.routes import check_keys as check_route_keys
from ..resilience.routes import single as single_route
from ..resilience.routes import upstream_names as route_upstreams
from .loader import Document, Problem, SectionError, load_file
from .sources import SourceFile, policy_digest
from .sections import SECTIONS
from .validate import schema_problems, secrets_as_warnings, usable_data, validator  # noqa: F401

DIALECT = {"openai": "openai", "azure": "openai", "openai-compatible": "openai", "anthropic": "anthropic"}


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 120.0
    stream_idle: float = 120.0
    total: float = 600.0


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    provider: str
    base_url: str           # no trailing slash
    api_key: str | None
    api_version: str | None
    timeouts: Timeouts
    max_connections: int
    breaker: BreakerPolicy | None = None

    @property
    def dialect(self) -> str:
        return DIALECT[self.provider]


MIN_READINESS_TOKEN = 16
MIN_PROBE_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 10 * 1024 * 1024
    max_header_bytes: int = 16384
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 30.0
    shutdown_grace: float = 30.0
    trust_forwarded_for: bool = False
    max_inspected_response_bytes: int = 64 * 1024 * 1024
    oversized_response: str = "block"
    # seconds between TCP/TLS reachability probes of each upstream host (0: off); /readyz shows them
    upstream_probe_interval: float = 30.0
    # unlocks /readyz detail for operators; never in a repr (a traceback, a log line)
    readiness_token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    mode: str = "passthrough"
    keys_file: str | None = None
    fingerprint_secret: bytes = b""
    fingerprint_secret_random: bool = True
    user_header: str = "x-aifw-user"
    trust_passthrough_users: bool = False
    allow_anonymous: bool = False


@dataclass(frozen=True, slots=True)
class ScopeMatch:
    groups: GlobSet
    users: GlobSet
    keys: GlobSet
    models: GlobSet
    routes: GlobSet

    def matches(self, ex) -> bool:
        ident = ex.identity
        if self.groups and not (ident and self.groups.match_any(ident.groups)):
            return False
        if self.users and not (ident and self.users.match(ident.user)):
            return False
        if self.keys and not (ident and self.keys.match_any((ident.key_id, ident.key_name))):
            return False
        if self.models and not self.models.match(ex.model):
            return False
        if self.routes and not self.routes.match_any(
                (ex.endpoint.name if ex.endpoint else None, ex.path)):
            return False
        return True


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    match: ScopeMatch | None
    guards: tuple[Guard, ...]
    request_guards: tuple[Guard, ...]
    response_guards: tuple[Guard, ...]   # reverse order (onion)
    chunk_guards: tuple[Guard, ...]      # reverse order
    end_guards: tuple[Guard, ...]        # reverse order
    complete_guards: tuple[Guard, ...]
    overrides: Mapping[str, Any]
    # reverse order; non-empty: a streamed answer is held whole for them before it goes out
    stream_answer_guards: tuple[Guard, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    digest: str
    path: str
    mode: str
    failure_mode: str
    server: ServerConfig
    identity: IdentityConfig
    keys: KeyStore
    upstreams: Mapping[str, Upstream]
    routes: tuple[Route, ...]
    default_routes: Mapping[str, Route]     # dialect -> its first upstream (no routes, or no model)
    passthrough_paths: GlobSet
    passthrough_upstream: Upstream | None
    unrecognized_body: str
    base: Scope
    scopes: tuple[Scope, ...]
    sections: Mapping[str, Any]
    watched_files: tuple[str, ...]
    sources: tuple[SourceFile, ...] = ()    # files besides the policy that its digest covers
    warnings: tuple[Problem, ...] = ()     # `aifw policy check` prints them; they fail nothing

    def select_scope(self, ex) -> Scope:
        for scope in self.scopes:
            if scope.match.matches(ex):
                return scope
        return self.base

    def route(self, model: str | None, dialect: str) -> Route | None:
        for route in self.routes:
            if route.dialect == dialect and (model is None or route.models.match(model)):
                return route
        if not self.routes or model is None:
            return self.default_routes.get(dialect)
        return None

    async def close(self) -> None:
        seen: set[int] = set()
        for scope in (self.base, *self.scopes):
            for guard in scope.guards:
                if id(guard) not in seen:
                    seen.add(id(guard))
                    await guard.close()


class PolicyError(Exception):
    def __init__(self, problems: list[Problem], watched: tuple[str, ...] = ()) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
        # files the failed compile read or tried to read: fixing any of them retries the reload
        self.watched = watched


def deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _compile_guards(doc: Document, sections: Mapping[str, Any], path: tuple, ctx: CompileContext,
                    policy_mode: str, policy_failure: str,
                    own: Mapping[str, Any] | None = None, check: bool = False) -> tuple[Guard, ...]:
    """``own``: a scope's own guard sections. A problem with a key the scope does not set was
    reported at the policy's guards already, and is not reported again at the scope.
    ``check``: secrets the guard reads from the environment may be unset (a warning)."""
    guards: list[Guard] = []
    for name, section in sections.items():
        section = dict(section or {})
        if not section.get("enabled", True):
            continue
        try:
            if check:
                with secretenv.checking() as unset:
                    guard = GUARDS[name].compile(section, ctx)
                for env_name in dict.fromkeys(unset):
                    message = f"{env_name} is not set here; the proxy needs it at start"
                    if not any(p.path == ("guards", name) and p.message == message for p in doc.problems):
                        doc.problem(path + (name,), message, warning=True)
            else:
                guard = GUARDS[name].compile(section, ctx)
        except SectionError as exc:
            for sub, message in exc.problems:
                if own is None or _sets(own.get(name), sub):
                    doc.problem(path + (name, *sub), message)
            continue
        except (ValueError, OSError, KeyError, TypeError) as exc:
            message = f"cannot compile guard {name!r}: {exc}"
            said = any(p.path == ("guards", name) and p.message == message for p in doc.problems)
            if own is None or (name in own and not said):
                doc.problem(path + (name,), message)
            continue
        guard.mode = section.get("mode", policy_mode)
        guard.failure_mode = section.get("failureMode", policy_failure)
        guards.append(guard)
    return tuple(guards)


def _sets(section: Any, path: tuple) -> bool:
    """True when ``section`` itself holds the key at ``path`` (or a part of it)."""
    node = section
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _scope(name: str, match: ScopeMatch | None, guards: tuple[Guard, ...], overrides_: Mapping) -> Scope:
    rev = tuple(reversed(guards))
    return Scope(
        name=name, match=match, guards=guards,
        request_guards=tuple(g for g in guards if overrides(type(g), "on_request")),
        response_guards=tuple(g for g in rev if overrides(type(g), "on_response")),
        chunk_guards=tuple(g for g in rev if overrides(type(g), "on_chunk")),
        end_guards=tuple(g for g in rev if overrides(type(g), "on_end")),
        complete_guards=tuple(g for g in guards if overrides(type(g), "on_complete")),
        overrides=overrides_,
        stream_answer_guards=tuple(g for g in rev if overrides(type(g), "on_stream_answer")),
    )


def _upstream(name: str, raw: Mapping[str, Any], breaker: BreakerPolicy | None) -> Upstream:
    t = raw.get("timeouts") or {}
    d = Timeouts()
    return Upstream(
        name=name, provider=raw["provider"], base_url=raw["baseUrl"].rstrip("/"),
        api_key=raw.get("apiKey") or None, api_version=raw.get("apiVersion"),
        timeouts=Timeouts(
            connect=parse_duration(t.get("connect", d.connect)),
            first_byte=parse_duration(t.get("firstByte", d.first_byte)),
            stream_idle=parse_duration(t.get("streamIdle", d.stream_idle)),
            total=parse_duration(t.get("total", d.total))),
        max_connections=int(raw.get("maxConnections", 256)),
        breaker=compile_breaker(raw.get("breaker"), breaker),
    )


def _names(data: Mapping[str, Any], key: str) -> list[str]:
    entries = data.get(key)
    return list(entries) if isinstance(entries, dict) else []


def _left_out(left_out: set[tuple], key: str, data: Mapping[str, Any]) -> set[str]:
    """Names of the ``key`` entries (upstreams, guards) left out for their own problems."""
    if (key,) in left_out:
        return set(_names(data, key))
    return {unit[1] for unit in left_out if len(unit) == 2 and unit[0] == key}


def compile_document(doc: Document, raw: bytes, services: Any, *, reload: bool = False,
                     check: bool = False, provider_keys: bool = True, prepare: bool = False) -> Policy:
    """Compile a loaded document; raises PolicyError listing every problem found.

    ``reload``: a keys file that does not exist is a problem (the running keys stay), where a
    first start accepts it as empty (keys are created with `aifw keys create` once it runs).
    ``check`` (`aifw policy check`): secrets need not be set, only referenced as ${VAR}; the
    Policy's ``warnings`` say which are unset. Serving needs them, so there they are errors.
    ``provider_keys=False``: a command that calls no upstream (`aifw scan`, `aifw replay`) does
    not need the provider keys virtualKeys mode otherwise demands. ``prepare`` (with ``check``):
    build what only serving needs too, as a start would (the compiled cache then holds it)."""
    if check:
        secrets_as_warnings(doc)
    # Load problems (duplicate keys, unset variables) do not hide schema problems, and schema
    # problems do not hide the rest: a check lists every problem in one run, not one per edit.
    if doc.errors and not isinstance(doc.data, dict):
        raise PolicyError(doc.problems)
    if not isinstance(doc.data, dict):
        doc.problem((), "a policy is a mapping")
        raise PolicyError(doc.problems)
    schema_problems(doc)
    data, left_out = usable_data(doc)
    if data is None or not isinstance(data.get("upstreams", {}), dict):
        raise PolicyError(doc.problems)
    defined = tuple(_names(doc.data, "upstreams"))
    broken_upstreams = _left_out(left_out, "upstreams", doc.data)
    broken_guards = _left_out(left_out, "guards", doc.data)
    policy_dir = os.path.dirname(os.path.abspath(doc.file))
    name = data.get("name", "default")
    mode = data.get("mode", "enforce")
    failure = data.get("failureMode", "closed")

    defaults = compile_defaults(data.get("resilience"))
    upstreams = {n: _upstream(n, u, defaults.breaker) for n, u in (data.get("upstreams") or {}).items()}
    # A route to an upstream with problems of its own says nothing more (not "unknown upstream").
    routes = [r for i, raw in enumerate(data.get("routes") or [])
              if raw is not None and not (route_upstreams(raw) & broken_upstreams)
              and (r := compile_route(doc, i, raw, upstreams, defaults.retry,
                                      defined)) is not None]
    default_routes: dict[str, Route] = {}
    for up in upstreams.values():
        default_routes.setdefault(up.dialect, single_route(up, defaults.retry))

    pt = data.get("passthrough") or {}
    pt_up = None
    if pt.get("upstream"):
        pt_up = upstreams.get(pt["upstream"])
        if pt_up is None and pt["upstream"] not in broken_upstreams:
            doc.problem(("passthrough", "upstream"), f"unknown upstream {pt['upstream']!r}")
    else:
        pt_up = next((u for u in upstreams.values() if u.dialect == "openai"), None)

    s = data.get("server") or {}
    dflt = ServerConfig()
    server = ServerConfig(
        host=s.get("host", dflt.host), port=s.get("port", dflt.port),
        max_body_bytes=parse_size(s.get("maxBodyBytes", dflt.max_body_bytes)),
        max_header_bytes=s.get("maxHeaderBytes", dflt.max_header_bytes),
        header_timeout=parse_duration(s.get("headerTimeout", dflt.header_timeout)),
        body_timeout=parse_duration(s.get("bodyTimeout", dflt.body_timeout)),
        keep_alive=parse_duration(s.get("keepAlive", dflt.keep_alive)),
        shutdown_grace=parse_duration(s.get("shutdownGrace", dflt.shutdown_grace)),
        trust_forwarded_for=bool(s.get("trustForwardedFor", False)),
        readiness_token=s.get("readinessToken") or "",
        max_inspected_response_bytes=parse_size(s.get("maxInspectedResponseBytes",
                                                      dflt.max_inspected_response_bytes)),
        oversized_response=s.get("oversizedResponse", dflt.oversized_response),
        upstream_probe_interval=parse_duration(s.get("upstreamProbeInterval", dflt.upstream_probe_interval)))
    if 0 < server.upstream_probe_interval < MIN_PROBE_INTERVAL:
        doc.problem(("server", "upstreamProbeInterval"),
                    f"must be 0 (off) or at least {MIN_PROBE_INTERVAL:g}s: each round connects to every upstream")
    if server.readiness_token and len(server.readiness_token) < MIN_READINESS_TOKEN:
        doc.problem(("server", "readinessToken"),
                    f"must be at least {MIN_READINESS_TOKEN} characters (a random secret)")

    ident = data.get("identity") or {}
    secret = ident.get("fingerprintSecret") or ""
    identity = IdentityConfig(
        mode=ident.get("mode", "passthrough"),
        keys_file=os.path.join(policy_dir, ident["keysFile"]) if ident.get("keysFile") else None,
        fingerprint_secret=secret.encode() if secret else _process_secret(),
        fingerprint_secret_random=not secret,
        user_header=ident.get("userHeader", "x-aifw-user").lower(),
        trust_passthrough_users=bool(ident.get("trustPassthroughUsers", False)),
        allow_anonymous=bool(ident.get("allowAnonymous", False)))
    mode_known = ("identity", "mode") not in left_out and ("identity",) not in left_out
    if mode_known:
        check_route_keys(doc, routes, identity.mode)
    keys = EMPTY_KEYSTORE
    watched = [os.path.abspath(doc.file)]
    if identity.mode == "virtualKeys":
        if not identity.keys_file:
            doc.problem(("identity",), "virtualKeys mode needs identity.keysFile")
        else:
            watched.append(identity.keys_file)
            try:
                keys = load_keys(identity.keys_file)
            except FileNotFoundError:
                if reload:
                    doc.problem(("identity", "keysFile"),
                                f"keys file {identity.keys_file} does not exist (moved or deleted?)")
                keys = KeyStore(identity.keys_file, {}, "")
            except (OSError, ValueError, Exception) as exc:  # yaml errors included
                doc.problem(("identity", "keysFile"), f"cannot load keys file: {exc}")
        for up in upstreams.values() if provider_keys else ():
            if not up.api_key:
                _missing_provider_key(doc, up, check)

    ctx = CompileContext(policy_dir=policy_dir, services=services, policy_name=name,
                         upstreams=upstreams, check=check and not prepare)
    base_guard_sections = data.get("guards") or {}
    base_guards = _compile_guards(doc, base_guard_sections, ("guards",), ctx, mode, failure, check=check)
    base = _scope("default", None, base_guards, {})
    scopes = []
    for i, sc in enumerate(data.get("scopes") or []):
        if sc is None:       # left out for its own problems
            continue
        own = sc.get("guards") or {}
        merged = deep_merge(base_guard_sections, own)
        # A scope may enable a guard the base policy lists nowhere: keep policy order, then new ones.
        merged = {k: v for k, v in merged.items() if k not in broken_guards}
        guards = _compile_guards(doc, merged, ("scopes", i, "guards"), ctx, mode, failure, own, check)
        m = sc["match"]
        match = ScopeMatch(*(GlobSet.of(m.get(k, ())) for k in ("groups", "users", "keys", "models", "routes")))
        extra = {k: v for k, v in sc.items() if k not in ("name", "match", "guards")}
        scopes.append(_scope(sc.get("name", f"scope{i}"), match, guards, extra))

    compiled_sections: dict[str, Any] = {}
    for sec_name, spec in SECTIONS.items():
        try:
            compiled_sections[sec_name] = spec.compile(data.get(sec_name) or {}, ctx)
        except (ValueError, OSError, KeyError, TypeError) as exc:
            doc.problem((sec_name,), f"cannot compile section {sec_name!r}: {exc}")
    watched.extend(ctx.sources.watched)
    if doc.errors:
        raise PolicyError(doc.problems, tuple(dict.fromkeys(watched)))
    return Policy(
        name=name, digest=policy_digest(raw, ctx.sources.files), path=os.path.abspath(doc.file),
        mode=mode, failure_mode=failure, server=server, identity=identity, keys=keys,
        upstreams=upstreams, routes=tuple(routes), default_routes=default_routes, passthrough_paths=GlobSet.of(pt.get("paths", ())),
        passthrough_upstream=pt_up, unrecognized_body=data.get("unrecognizedBody", "block"),
        base=base, scopes=tuple(scopes), sections=compiled_sections,
        watched_files=tuple(dict.fromkeys(watched)), sources=ctx.sources.files,
        warnings=tuple(doc.problems))


PROVIDER_KEY_ENV = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY",
                    "anthropic": "ANTHROPIC_API_KEY", "openai-compatible": "OPENAI_API_KEY"}


def _missing_provider_key(doc: Document, up: Upstream, check: bool) -> None:
    path = ("upstreams", up.name, "apiKey")
    names = doc.env_refs.get(path)
    if check and any(p.path == path and p.warning for p in doc.problems):
        return      # its unset variable is a warning already: one per variable
    if check and names:
        # The check runs where the secret is not (an image build, CI): that it is referenced is
        # what can be checked; the proxy refuses to start without it.
        doc.problem(path, f"{', '.join(names)} is not set here; the proxy needs it at start "
                          "(virtualKeys mode sends it upstream)", warning=True)
        return
    doc.problem(path, "virtualKeys mode needs the provider key "
                      f"(e.g. apiKey: ${{{PROVIDER_KEY_ENV[up.provider]}}})")


_SECRET: bytes | None = None


def _process_secret() -> bytes:
    # No configured secret: fingerprints are stable for this process only (logged at start).
    global _SECRET
    if _SECRET is None:
        _SECRET = secrets.token_bytes(32)
    return _SECRET


def compile_policy(path: str, services: Any = None, env: Mapping[str, str] | None = None, *,
                   reload: bool = False, check: bool = False, provider_keys: bool = True,
                   prepare: bool = False) -> Policy:
    try:
        doc, raw = load_file(path, env)
    except OSError as exc:
        raise PolicyError([Problem(path, 1, (), f"cannot read policy: {exc.strerror or exc}")]) from None
    return compile_document(doc, raw, services, reload=reload, check=check, provider_keys=provider_keys,
                            prepare=prepare)


def check_files(paths: list[str], env: Mapping[str, str] | None = None, *,
                warnings: bool = False, prepare: bool = False) -> list[Problem]:
    """Every problem of every file (``warnings``: unset secrets too, marked as warnings;
    ``prepare``: see ``compile_document``)."""
    from ..services import Services
    problems: list[Problem] = []
    for path in paths:
        try:
            problems.extend(compile_policy(path, Services(), env, check=True, prepare=prepare).warnings)
        except PolicyError as exc:
            problems.extend(exc.problems)
    return [p for p in problems if warnings or not p.warning]

"""A LiteLLM proxy `config.yaml` -> an aifw policy (`aifw import litellm`).

What maps: `model_list` deployments -> upstreams and routes (several deployments of one
`model_name`, and `fallbacks`, become a route's ordered upstreams); `rpm`/`tpm` -> global limits
of that model; `num_retries`, `timeout`, `allowed_fails`/`cooldown_time` -> retries, timeouts
and breakers; `max_budget`/`budget_duration` and the per-user and per-key defaults -> spend and
rate limits; `master_key` -> proxy-issued keys; prices in `model_info` -> `cost.prices`; Redis
settings -> the limits' Redis. Everything else is named in a `# not mapped:` comment at the top
of the policy and in the returned notes: nothing is dropped without a word.

Secrets never land in the policy: `os.environ/NAME` becomes `${NAME}`, a literal key is replaced
by a variable to set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

# LiteLLM provider prefix -> (aifw provider, default base URL, default key variable).
# OpenAI-compatible services are reached through their OpenAI-compatible endpoints.
PROVIDERS: dict[str, tuple[str, str | None, str]] = {
    "openai": ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "text-completion-openai": ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "azure": ("azure", None, "AZURE_API_KEY"),
    "azure_text": ("azure", None, "AZURE_API_KEY"),
    "anthropic": ("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    "hosted_vllm": ("openai-compatible", None, "HOSTED_VLLM_API_KEY"),
    "openai_like": ("openai-compatible", None, "OPENAI_LIKE_API_KEY"),
    "groq": ("openai-compatible", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": ("openai-compatible", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": ("openai-compatible", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together_ai": ("openai-compatible", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "fireworks_ai": ("openai-compatible", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "openrouter": ("openai-compatible", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
}
PROVIDERS_WITH_KEYS = frozenset({"groq", "mistral", "deepseek", "together_ai", "fireworks_ai", "openrouter"})
DIALECT = {"openai": "openai", "azure": "openai", "openai-compatible": "openai", "anthropic": "anthropic"}
ENV_REF = re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$")
DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|mo)$")

# Settings that only tune LiteLLM itself or its integrations: named, with what aifw does instead.
INSTEAD = {
    "success_callback": "aifw writes a signed audit log and exports OpenTelemetry traces and /metrics",
    "failure_callback": "aifw writes a signed audit log and exports OpenTelemetry traces and /metrics",
    "callbacks": "aifw writes a signed audit log and exports OpenTelemetry traces and /metrics",
    "drop_params": "aifw forwards request parameters unchanged",
    "set_verbose": "aifw logs with AIFW_LOG_LEVEL",
    "json_logs": "aifw logs JSON with AIFW_LOG_FORMAT=json",
    "cache": "aifw does not cache answers",
    "cache_params": "aifw does not cache answers",
    "database_url": "LiteLLM keeps keys, teams and spend in its database; aifw keeps key hashes in the "
                    "keys file and spend in its limiter: recreate keys with `aifw keys create`",
    "routing_strategy": "aifw sends to a route's first healthy upstream, then the next",
    "context_window_fallbacks": "aifw does not change the model of a request that is too long",
    "guardrails": "aifw's own injection guard is on (guards.injection); PII masking is guards.pii",
}


@dataclass
class Result:
    policy: dict[str, Any]
    notes: list[str] = field(default_factory=list)       # what was not mapped, or only roughly

    def text(self, source: str) -> str:
        import yaml
        head = [f"# aifw policy imported from LiteLLM {source} by `aifw import litellm`.",
                "# Check it with: aifw policy check <this file>"]
        head += [f"# not mapped: {note}" for note in self.notes]
        return "\n".join(head) + "\n" + yaml.safe_dump(self.policy, sort_keys=False, width=100)


def _secret(value: Any, default_env: str, where: str, notes: list[str]) -> str:
    if isinstance(value, str) and (m := ENV_REF.match(value.strip())):
        return "${%s}" % m.group(1)
    if value:
        notes.append(f"{where}: a literal API key is not copied into the policy; set ${default_env}")
    return "${%s}" % default_env


def _name(provider: str, base_url: str, taken: set[str]) -> str:
    host = urlparse(base_url).hostname or ""
    label = host.split(".")[0] if host and not host.startswith(("api.", "127.", "localhost")) else ""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{provider}-{label}" if label else provider).strip("-")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _env_or_literal(value: Any) -> Any:
    if isinstance(value, str) and (m := ENV_REF.match(value.strip())):
        return "${%s}" % m.group(1)
    return value


def _window(duration: Any, where: str, notes: list[str]) -> str | None:
    """LiteLLM budget_duration -> aifw's calendar windows (day, month), or None with a note."""
    m = DURATION.match(str(duration or "30d").strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if (n, unit) in ((1, "d"), (24, "h")):
            return "day"
        if (n, unit) == (1, "mo") or (unit == "d" and 28 <= n <= 31):
            return "month"
    notes.append(f"{where}: budget_duration {duration!r}: aifw budgets run per UTC day or month")
    return None


class _Converter:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.notes: list[str] = []
        self.upstreams: dict[str, dict[str, Any]] = {}
        self.by_target: dict[tuple, str] = {}
        self.groups: dict[str, list[dict[str, Any]]] = {}    # model_name -> route targets
        self.limits: list[dict[str, Any]] = []
        self.prices: dict[str, dict[str, float]] = {}
        self.capacity: dict[str, dict[str, int]] = {}    # model_name -> summed rpm / tpm
        self.settings = {**(config.get("router_settings") or {}), **(config.get("litellm_settings") or {})}

    def deployment(self, i: int, entry: dict[str, Any]) -> None:
        where = f"model_list[{i}]"
        model_name = entry.get("model_name")
        params = entry.get("litellm_params") or {}
        model = str(params.get("model") or "")
        if not model_name or not model:
            self.notes.append(f"{where}: needs model_name and litellm_params.model")
            return
        prefix, _, backend = model.partition("/")
        if not backend:       # LiteLLM infers the provider from the model's name
            prefix, backend = ("anthropic" if model.startswith("claude") else "openai"), model
        if prefix not in PROVIDERS:
            self.notes.append(f"{where} ({model_name}): provider {prefix!r} has no OpenAI- or "
                              "Anthropic-compatible API that aifw can front")
            return
        provider, base_url, key_env = PROVIDERS[prefix]
        base_url = _env_or_literal(params.get("api_base")) or base_url
        if not base_url:
            self.notes.append(f"{where} ({model_name}): {prefix} needs api_base")
            return
        if provider == "openai" and params.get("api_base") and "api.openai.com" not in str(base_url):
            provider = "openai-compatible"
        upstream: dict[str, Any] = {"provider": provider, "baseUrl": str(base_url).rstrip("/")}
        if params.get("api_key") or provider != "openai-compatible" or prefix in PROVIDERS_WITH_KEYS:
            upstream["apiKey"] = _secret(params.get("api_key"), key_env, where, self.notes)
        else:
            # a server of your own that LiteLLM called without a key: aifw sends a dummy one
            # unless the variable is set (virtualKeys mode sends every upstream a key)
            upstream["apiKey"] = "${%s:-unused}" % key_env
        if provider == "azure":
            upstream["apiVersion"] = str(_env_or_literal(params.get("api_version")) or "2024-10-21")
        timeouts = {}
        if params.get("timeout") or self.settings.get("request_timeout") or self.settings.get("timeout"):
            timeouts["total"] = f"{params.get('timeout') or self.settings.get('request_timeout') or self.settings['timeout']}s"
        if params.get("stream_timeout"):
            timeouts["streamIdle"] = f"{params['stream_timeout']}s"
        if timeouts:
            upstream["timeouts"] = timeouts
        key = tuple(sorted((k, str(v)) for k, v in upstream.items()))
        name = self.by_target.get(key)
        if name is None:
            name = _name(provider, upstream["baseUrl"], set(self.upstreams))
            self.upstreams[name] = upstream
            self.by_target[key] = name
        target: dict[str, Any] = {"upstream": name}
        if backend != model_name:
            target["model"] = backend      # the name this upstream knows the model by
        self.groups.setdefault(model_name, []).append(target)
        for key_ in ("rpm", "tpm"):
            if params.get(key_):
                capacity = self.capacity.setdefault(model_name, {})
                capacity[key_] = capacity.get(key_, 0) + int(params[key_])
        info = entry.get("model_info") or {}
        cost_in, cost_out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
        if cost_in is not None or cost_out is not None:
            self.prices[model_name] = {"input": round(float(cost_in or 0) * 1e6, 6),
                                       "output": round(float(cost_out or 0) * 1e6, 6)}
        unused = sorted(set(params) - {"model", "api_base", "api_key", "api_version", "rpm", "tpm",
                                       "timeout", "stream_timeout"})
        if unused:
            self.notes.append(f"{where} ({model_name}): litellm_params {', '.join(unused)} "
                              "(aifw forwards the client's own request parameters)")

    def routes(self) -> list[dict[str, Any]]:
        fallbacks: dict[str, list[str]] = {}
        for item in self.settings.get("fallbacks") or []:
            if isinstance(item, dict):
                for k, v in item.items():
                    fallbacks.setdefault(k, []).extend(v if isinstance(v, list) else [v])
        routes = []
        for model_name, targets in self.groups.items():
            dialect = DIALECT[self.upstreams[targets[0]["upstream"]]["provider"]]
            chain = list(targets)
            for other in fallbacks.get(model_name, []):
                if other not in self.groups:
                    self.notes.append(f"fallbacks: {model_name} -> {other}: no model_list entry named {other}")
                    continue
                for t in self.groups[other]:
                    chain.append({"upstream": t["upstream"], "model": t.get("model", other)})
            kept, seen = [], set()
            for t in chain:
                if DIALECT[self.upstreams[t["upstream"]]["provider"]] != dialect:
                    self.notes.append(f"{model_name}: {t['upstream']} speaks another API than "
                                      f"{targets[0]['upstream']}; aifw does not translate between "
                                      "OpenAI and Anthropic formats, so it is not a fallback here")
                    continue
                if (t["upstream"], t.get("model")) not in seen:
                    seen.add((t["upstream"], t.get("model")))
                    kept.append(t)
            if len(targets) > 1:
                self.notes.append(f"{model_name}: LiteLLM balances load over its {len(targets)} deployments; "
                                  "aifw sends to the first and falls back to the next")
            route: dict[str, Any] = {"models": [model_name]}
            if len(kept) == 1 and "model" not in kept[0]:
                route["upstream"] = kept[0]["upstream"]
            else:
                route["upstreams"] = [t if "model" in t else t["upstream"] for t in kept]
            routes.append(route)
        for k in fallbacks:
            if k not in self.groups:
                self.notes.append(f"fallbacks: {k}: no model_list entry named {k}")
        return routes

    def budgets(self) -> None:
        s, g = self.settings, self.config.get("general_settings") or {}
        for model_name, capacity in self.capacity.items():
            # LiteLLM spreads a model's traffic so that no deployment exceeds its own rpm/tpm;
            # aifw caps the model's traffic at what all its deployments take together.
            limit: dict[str, Any] = {"name": f"{_slug(model_name)}-capacity", "scope": "global",
                                     "models": [model_name]}
            if capacity.get("rpm"):
                limit["requests"] = f"{capacity['rpm']}/minute"
            if capacity.get("tpm"):
                limit["tokens"] = f"{capacity['tpm']}/minute"
            self.limits.append(limit)
        if s.get("max_budget"):
            window = _window(s.get("budget_duration"), "litellm_settings.max_budget", self.notes)
            if window:
                self.limits.append({"name": "proxy-spend", "scope": "global",
                                    "spend": f"${_usd(s['max_budget'])}/{window}"})
        if s.get("max_internal_user_budget"):
            window = _window(s.get("internal_user_budget_duration"),
                             "litellm_settings.max_internal_user_budget", self.notes)
            if window:
                self.limits.append({"name": "user-spend", "scope": "user",
                                    "spend": f"${_usd(s['max_internal_user_budget'])}/{window}"})
        for source in ("default_key_generate_params", "upperbound_key_generate_params"):
            p = s.get(source) or {}
            limit: dict[str, Any] = {"name": f"key-{source.split('_')[0]}", "scope": "key"}
            if p.get("rpm_limit"):
                limit["requests"] = f"{int(p['rpm_limit'])}/minute"
            if p.get("tpm_limit"):
                limit["tokens"] = f"{int(p['tpm_limit'])}/minute"
            if p.get("max_parallel_requests"):
                limit["concurrency"] = int(p["max_parallel_requests"])
            if p.get("max_budget"):
                window = _window(p.get("budget_duration"), f"litellm_settings.{source}.max_budget", self.notes)
                if window:
                    limit["spend"] = f"${_usd(p['max_budget'])}/{window}"
            if len(limit) > 2:
                self.limits.append(limit)
            rest = sorted(set(p) - {"rpm_limit", "tpm_limit", "max_parallel_requests", "max_budget",
                                    "budget_duration"})
            if rest:
                self.notes.append(f"litellm_settings.{source}: {', '.join(rest)} (give them to "
                                  "`aifw keys create`: --models, --group, --name)")
        if g.get("max_parallel_requests"):
            self.limits.append({"name": "key-parallel", "scope": "key", "concurrency": int(g["max_parallel_requests"])})
        if g.get("global_max_parallel_requests"):
            self.limits.append({"name": "global-parallel", "scope": "global",
                                "concurrency": int(g["global_max_parallel_requests"])})

    def resilience(self) -> dict[str, Any]:
        s, out = self.settings, {}
        if s.get("num_retries") is not None:
            out["retry"] = {"attempts": max(1, min(10, int(s["num_retries"]) + 1))}
        breaker = {}
        if s.get("allowed_fails"):
            breaker["failures"] = int(s["allowed_fails"])
        if s.get("cooldown_time"):
            breaker["coolDown"] = f"{s['cooldown_time']}s"
        if breaker:
            out["breaker"] = breaker
        return out

    def redis(self) -> dict[str, Any] | None:
        s = self.settings
        if s.get("redis_url"):
            return {"url": _env_or_literal(s["redis_url"])}
        if not s.get("redis_host"):
            return None
        host, port = _env_or_literal(s["redis_host"]), _env_or_literal(s.get("redis_port") or 6379)
        # LiteLLM's os.environ/ has no default; a policy check wants one for an address
        host = host.replace("}", ":-127.0.0.1}") if str(host).startswith("${") else host
        port = port.replace("}", ":-6379}") if str(port).startswith("${") else port
        out: dict[str, Any] = {"url": f"redis://{host}:{port}/0"}
        pw = s.get("redis_password")
        if isinstance(pw, str) and (m := ENV_REF.match(pw)):
            out["passwordEnv"] = m.group(1)
        elif pw:
            out["passwordEnv"] = "REDIS_PASSWORD"
            self.notes.append("router_settings.redis_password: a literal password is not copied; set $REDIS_PASSWORD")
        return out

    def leftovers(self) -> None:
        handled = {
            "litellm_settings": {"fallbacks", "num_retries", "request_timeout", "timeout", "allowed_fails",
                                 "cooldown_time", "max_budget", "budget_duration", "max_internal_user_budget",
                                 "internal_user_budget_duration", "default_key_generate_params",
                                 "upperbound_key_generate_params", "redis_host", "redis_port",
                                 "redis_password", "redis_url"},
            "general_settings": {"master_key", "max_parallel_requests", "global_max_parallel_requests"},
        }
        handled["router_settings"] = handled["litellm_settings"]
        for section, keys in handled.items():
            for key in (self.config.get(section) or {}):
                if key not in keys:
                    why = INSTEAD.get(key, "no aifw equivalent")
                    self.notes.append(f"{section}.{key} ({why})")
        for section in self.config:
            if section not in (*handled, "model_list"):
                why = ("set these variables in aifw's environment" if section == "environment_variables"
                       else INSTEAD.get(section, "no aifw equivalent"))
                self.notes.append(f"{section} ({why})")


def _usd(amount: Any) -> str:
    return f"{float(amount):.6f}".rstrip("0").rstrip(".")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "model"


def convert(config: dict[str, Any]) -> Result:
    """Map a parsed LiteLLM config to an aifw policy (a dict) and notes on what did not map."""
    if not isinstance(config, dict):
        raise ValueError("a LiteLLM config is a mapping (model_list, litellm_settings, ...)")
    c = _Converter(config)
    for i, entry in enumerate(config.get("model_list") or []):
        c.deployment(i, entry if isinstance(entry, dict) else {})
    if not c.upstreams:
        raise ValueError("no model_list entry maps to an upstream aifw can front")
    routes = c.routes()
    c.budgets()
    general = config.get("general_settings") or {}
    policy: dict[str, Any] = {"version": 1, "name": "imported-from-litellm", "mode": "enforce"}
    # The proxy holds the provider keys, as LiteLLM did; callers use keys aifw issues. Without a
    # master_key LiteLLM let anyone call: aifw still issues keys, and says so.
    policy["identity"] = {"mode": "virtualKeys", "keysFile": "${AIFW_KEYS_FILE:-keys/keys.yaml}"}
    if not general.get("master_key"):
        c.notes.append("general_settings.master_key is not set: LiteLLM took any caller; aifw takes "
                       "keys it issued (`aifw keys create`)")
    policy["upstreams"] = c.upstreams
    policy["routes"] = routes
    guards: dict[str, Any] = {"access": {}, "injection": {"paranoiaLevel": 1, "threshold": 5}}
    if c.limits:
        redis = c.redis()
        guards["ratelimit"] = {"backend": "redis" if redis else "memory", **({"redis": redis} if redis else {}),
                               "limits": c.limits}
    elif c.redis():
        c.notes.append("router_settings redis: used by aifw only for limits, and none were imported")
    policy["guards"] = guards
    if c.prices:
        policy["cost"] = {"prices": c.prices}
    resilience = c.resilience()
    if resilience:
        policy["resilience"] = resilience
    c.leftovers()
    return Result(policy, c.notes)

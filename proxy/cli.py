"""The ``aifw`` command line."""
from __future__ import annotations

import argparse
import json
import os
import sys

DEFAULT_POLICY = "policies/default.yaml"


def _policy_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default=os.environ.get("AIFW_POLICY", DEFAULT_POLICY),
                   help="policy file (default: $AIFW_POLICY or policies/default.yaml)")


def cmd_serve(args) -> int:
    from .serve import serve
    return serve(args.policy, args.host, args.port, args.workers, args.loop)


def cmd_policy_check(args) -> int:
    from .policy.compile import check_files
    problems = sorted(check_files(args.files, warnings=True, prepare=args.prepare),
                      key=lambda p: (p.file, p.line))
    for problem in problems:
        print(problem)
    failed = {p.file for p in problems if not p.warning}
    for f in args.files:
        if f not in failed:
            print(f"{f}: ok")
    return 1 if failed else 0


def cmd_policy_schema(args) -> int:
    if args.markdown:
        from .policy.reference import render_markdown
        sys.stdout.write(render_markdown())
        return 0
    from .policy.schema import build_schema
    print(json.dumps(build_schema(), indent=2, sort_keys=False))
    return 0


def _keys_file(args) -> str:
    """The keys file the policy names. Only the policy's identity section is read: managing
    keys needs neither the provider keys nor anything else the proxy needs to serve."""
    if args.keys_file:
        return args.keys_file
    from .policy.loader import load_file
    try:
        doc, _ = load_file(args.policy)
    except OSError as exc:
        raise SystemExit(f"aifw: cannot read policy {args.policy}: {exc.strerror or exc}")
    problems = [p for p in doc.problems if p.path[:1] in ((), ("identity",))]
    if problems:
        raise SystemExit("aifw: the policy has problems:\n" + "\n".join(map(str, problems)))
    identity = doc.data.get("identity") if isinstance(doc.data, dict) else None
    keys_file = identity.get("keysFile") if isinstance(identity, dict) else None
    if not isinstance(keys_file, str) or not keys_file:
        raise SystemExit(f"aifw: {args.policy} names no identity.keysFile (a virtualKeys policy "
                         "does, e.g. policies/strict.yaml); pass --policy or --keys-file")
    return os.path.join(os.path.dirname(os.path.abspath(args.policy)), keys_file)


def cmd_keys_create(args) -> int:
    from .keys import create_key
    key_id, key = create_key(_keys_file(args), user=args.user, groups=args.group or (),
                             models=args.models or (), trusted=args.trusted, name=args.name)
    print(f"Created key {key_id} for user {args.user}. Store it now: it is not shown again.", file=sys.stderr)
    print(key)
    return 0


def cmd_keys_revoke(args) -> int:
    from .keys import revoke_key
    if not revoke_key(_keys_file(args), args.id):
        print(f"aifw: no key with id {args.id}, nor one live key named so", file=sys.stderr)
        return 1
    print(f"Revoked key {args.id}.")
    return 0


def cmd_keys_list(args) -> int:
    from .keys import list_keys
    for record in list_keys(_keys_file(args)):
        print(json.dumps(record, sort_keys=True))
    return 0


# Subcommands owned by other modules: each module's register(subparsers) adds its own. Keyed by
# the top-level commands each registers, so a command line imports only the module it runs:
# `aifw policy check` in a pre-commit hook should not pay for the audit reader or the importers.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "proxy.audit.cli": ("audit",),
    "proxy.pii.cli": ("pii",),
    "proxy.detection.cli": ("eval", "rules"),
    "proxy.replay": ("replay",),
    "proxy.scan": ("scan",),
    "proxy.importers.cli": ("import",),
}


def _extensions_for(argv: list[str] | None) -> list[str]:
    """The extension modules a command line needs: the one owning its command, none for a
    command of this module, every one otherwise (help, a typo: the usage lists them all)."""
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    if command in _OWN_COMMANDS:
        return []
    owners = [m for m, commands in EXTENSIONS.items() if command in commands]
    return owners or list(EXTENSIONS)


_OWN_COMMANDS = frozenset({"serve", "policy", "keys"})


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv`` (default: this process's arguments), with the subcommands of the
    other modules that command line can reach."""
    parser = argparse.ArgumentParser(prog="aifw", description="aifw: an AI firewall for LLM APIs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the proxy")
    _policy_arg(p)
    p.add_argument("--host", default=None, help="listen address (default: policy server.host)")
    p.add_argument("--port", type=int, default=None, help="listen port (default: policy server.port)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("AIFW_WORKERS", "1")),
                   help="worker processes sharing the port (needs a shared limit backend)")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"),
                   default=os.environ.get("AIFW_EVENT_LOOP", "auto"),
                   help="event loop: uvloop when installed (auto, the default; $AIFW_EVENT_LOOP), "
                        "or asyncio's own")
    p.set_defaults(func=cmd_serve)

    pol = sub.add_parser("policy", help="policy files").add_subparsers(dest="policy_command", required=True)
    p = pol.add_parser("check", help="validate policy files; prints file:line: $.path: message")
    p.add_argument("files", nargs="+")
    p.add_argument("--prepare", action="store_true",
                   help="also build what serving them needs (rule prefilters), as a start does, so "
                        "the compiled cache (AIFW_CACHE_DIR) holds it: an image build runs this")
    p.set_defaults(func=cmd_policy_check)
    p = pol.add_parser("schema", help="print the policy JSON Schema")
    p.add_argument("--markdown", action="store_true", help="print the Markdown reference instead")
    p.set_defaults(func=cmd_policy_schema)

    keys = sub.add_parser("keys", help="proxy-issued virtual keys").add_subparsers(dest="keys_command", required=True)
    for name, func, help_ in (("create", cmd_keys_create, "issue a key (printed once)"),
                              ("revoke", cmd_keys_revoke, "revoke a key by id (or by its --name)"),
                              ("list", cmd_keys_list, "list keys (without hashes)")):
        p = keys.add_parser(name, help=help_)
        _policy_arg(p)
        p.add_argument("--keys-file", default=None, help="keys file (default: the policy's identity.keysFile)")
        if name == "create":
            p.add_argument("--user", required=True)
            p.add_argument("--group", action="append", help="group (repeatable)")
            p.add_argument("--models", action="append", help="model glob the key may use (repeatable)")
            p.add_argument("--trusted", action="store_true", help="may assert end users (x-aifw-user, user field)")
            p.add_argument("--name", default=None)
        elif name == "revoke":
            p.add_argument("id", help="key id, or the name given at create")
        p.set_defaults(func=func)

    import importlib
    for module in _extensions_for(argv):
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

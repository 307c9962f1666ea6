"""`aifw import litellm config.yaml [-o policy.yaml]`."""
from __future__ import annotations

import sys


def cmd_import_litellm(args) -> int:
    import yaml

    from . import litellm
    try:
        with open(args.config, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
        result = litellm.convert(config)
    except OSError as exc:
        print(f"aifw: cannot read {args.config}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except (yaml.YAMLError, ValueError) as exc:
        print(f"aifw: {args.config}: {exc}", file=sys.stderr)
        return 1
    text = result.text(args.config)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    for note in result.notes:
        print(f"aifw: not mapped: {note}", file=sys.stderr)
    where = args.output or "the policy"
    print(f"aifw: {len(result.policy['upstreams'])} upstream(s), {len(result.policy['routes'])} route(s); "
          f"{len(result.notes)} item(s) not mapped, listed at the top of {where}. "
          "Next: aifw policy check, then aifw keys create for each caller.", file=sys.stderr)
    return 0


def register(sub) -> None:
    imp = sub.add_parser("import", help="convert another gateway's configuration to an aifw policy")
    kinds = imp.add_subparsers(dest="import_command", required=True)
    p = kinds.add_parser("litellm", help="a LiteLLM proxy config.yaml (model_list, litellm_settings, "
                                         "general_settings, router_settings)")
    p.add_argument("config", help="LiteLLM config.yaml")
    p.add_argument("-o", "--output", default=None, help="write the policy here (default: standard output)")
    p.set_defaults(func=cmd_import_litellm)

"""Measure the system-prompt context rules: CSE multilingual split by language, benign with context.

    .venv/bin/python train/eval_context.py [--data ../shared/datasets] [--split dev|held|all]
                                          [--misses N] [--no-model | --lofo-model]

- CyberSecEval multilingual: every row is scored with its ``system_prompt`` as a system slot (as
  ``aifw eval`` does). The 17 languages are split in two fixed halves, alternating in alphabetical
  order (DEV_LANGUAGES / HELD_LANGUAGES below); thresholds, severities and vocabulary fixes were
  chosen looking only at DEV rows (``--misses`` prints dev rows only unless --split held).
- Benign with context: every benign row (arena-hard, NotInject, JailbreakBench plain harmful goals)
  is paired with 3 system prompts drawn at random (seed 7) from the distinct CSE system prompts;
  the false-positive rate is per family, over all pairs, and "rows with any flagged pair".
- Mismatched context (a specificity check): each CSE user text paired with a system prompt of
  another CSE row in the same language, chosen at random (seed 7); it reports how often the
  context rules fire there versus with the row's own system prompt.
"""
from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "train"))

from proxy.detection.assess import assess  # noqa: E402
from proxy.detection.evaluate import read_rows, row_slots  # noqa: E402
from proxy.detection.settings import compile_settings  # noqa: E402

LANGUAGES = sorted(["Arabic", "Bengali", "Chinese", "Filipino/Tagalog", "French", "German", "Hindi",
                    "Indonesian", "Italian", "Japanese", "Korean", "Portuguese", "Russian",
                    "Spanish", "Thai", "Turkish", "Vietnamese"])
DEV_LANGUAGES = frozenset(LANGUAGES[0::2])     # Arabic, Chinese, French, Hindi, Italian, Korean, Russian, Thai, Vietnamese
HELD_LANGUAGES = frozenset(LANGUAGES[1::2])    # Bengali, Filipino, German, Indonesian, Japanese, Portuguese, Spanish, Turkish
SEED = 7
PAIRS = 3


def lofo_model(data: Path, family: str):
    """The model the leave-one-family-out run uses for ``family``: trained without it."""
    import numpy as np
    import train_injection_model as T
    rows = read_rows([str(data / f) for f in T.FILES])
    y = np.array([int(r["label"]) for r in rows])
    fam = np.array([str(r["subset"]) for r in rows])
    X = T.matrix([r["text"] for r in rows])
    keep = fam != family
    clf, p_op = T.train(X[keep], y[keep], fam[keep])
    return T.as_model(clf, p_op, {})


def with_model(settings, model):
    from dataclasses import replace
    return replace(settings, detector=replace(settings.detector, model=model))


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--misses", type=int, default=0, help="print this many missed rows")
    ap.add_argument("--split", default="dev", choices=("dev", "held", "all"),
                    help="which CSE rows --misses prints")
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--skip-benign", action="store_true")
    ap.add_argument("--skip-cse", action="store_true",
                    help="print only the benign table (for vocabulary work that must stay blind to CSE rows)")
    ap.add_argument("--lofo-model", action="store_true",
                    help="use a model trained without the CSE family (as in --lofo), not the shipped one")
    args = ap.parse_args(argv)
    data = Path(args.data)
    settings = compile_settings({"model": {"enabled": False}} if args.no_model else {})
    no_ctx = compile_settings({"ruleSets": ["injection", "jailbreak", "evasion"],
                               **({"model": {"enabled": False}} if args.no_model else {})})
    if args.lofo_model:
        settings, no_ctx = (with_model(s, lofo_model(data, "cse_pi_multilingual"))
                            for s in (settings, no_ctx))
    cse = read_rows([str(data / "prompt_attacks/cyberseceval_multilingual.jsonl")])
    if not args.skip_cse:
        report_cse(cse, settings, no_ctx, args)
    if args.skip_benign:
        return 0
    report_benign(data, cse, settings)
    return 0


def report_cse(cse, settings, no_ctx, args) -> None:
    print("## CyberSecEval multilingual (system prompt passed as a system slot)\n")
    print("| rows | n | before (no context rules) | after |\n|---|---|---|---|")
    res = {}
    for i, row in enumerate(cse):
        res[i] = (assess(no_ctx, row_slots(row)), assess(settings, row_slots(row)))
    groups = {"all": range(len(cse)),
              "dev languages": [i for i, r in enumerate(cse) if r["language"] in DEV_LANGUAGES],
              "held-out languages": [i for i, r in enumerate(cse) if r["language"] in HELD_LANGUAGES]}
    for name, idx in groups.items():
        idx = list(idx)
        print(f"| {name} | {len(idx)} | {pct(sum(res[i][0].attack for i in idx), len(idx))} | "
              f"{pct(sum(res[i][1].attack for i in idx), len(idx))} |")
    for key in ("language", "injection_variant", "risk_category", "injection_type"):
        by = defaultdict(list)
        for i, r in enumerate(cse):
            by[r[key]].append(i)
        print(f"\n{key}: " + ", ".join(
            f"{k} {pct(sum(res[i][1].attack for i in v), len(v))}" for k, v in sorted(by.items())))
    fired = defaultdict(int)
    for i in res:
        for rid in res[i][1].rule_ids:
            fired[rid] += 1
    print("\nrule ids on CSE rows:", dict(sorted(fired.items())))

    # Mismatched same-language context: does the context signal depend on the right prompt?
    rng = random.Random(SEED)
    by_lang = defaultdict(list)
    for r in cse:
        by_lang[r["language"]].append(r["system_prompt"])
    own = other = 0
    for r in cse:
        choices = [s for s in by_lang[r["language"]] if s != r["system_prompt"]]
        if not choices:
            continue
        sp = rng.choice(choices)
        a = assess(settings, [("system", sp), ("user", r["text"])])
        b = assess(settings, [("system", r["system_prompt"]), ("user", r["text"])])
        other += any(x.startswith("CTX-") for x in a.rule_ids)
        own += any(x.startswith("CTX-") for x in b.rule_ids)
    print(f"\ncontext rules fire with own system prompt: {pct(own, len(cse))}; "
          f"with another same-language CSE system prompt: {pct(other, len(cse))}")

    if args.misses:
        want = {"dev": DEV_LANGUAGES, "held": HELD_LANGUAGES, "all": frozenset(LANGUAGES)}[args.split]
        shown = 0
        for i, r in enumerate(cse):
            if r["language"] in want and not res[i][1].attack and shown < args.misses:
                shown += 1
                print(f"\n-- {r['language']} {r['injection_variant']} score={res[i][1].score} "
                      f"{res[i][1].rule_ids}\nSYS: {r['system_prompt'][:240]!r}\nUSR: {r['text'][:300]!r}")



def report_benign(data: Path, cse, settings) -> None:
    benign = read_rows([str(data / "benign/notinject.jsonl"), str(data / "benign/arena_hard_v0_1.jsonl"),
                        str(data / "prompt_attacks/jailbreakbench.jsonl")])
    benign = [r for r in benign if int(r["label"]) == 0]
    prompts = sorted({r["system_prompt"] for r in cse})
    rng = random.Random(SEED)
    print("\n## Benign rows, each with 3 random CSE system prompts (seed 7)\n")
    print("| family | rows | FP without system prompt | FP pairs (of 3x rows) | rows with any FP pair |")
    print("|---|---|---|---|---|")
    fam = defaultdict(lambda: [0, 0, 0, 0])
    flagged_ids = defaultdict(int)
    for r in benign:
        f = fam[r["subset"]]
        f[0] += 1
        f[1] += assess(settings, row_slots(r)).attack
        anyp = False
        for sp in rng.sample(prompts, PAIRS):
            a = assess(settings, [("system", sp), ("user", r["text"])])
            f[2] += a.attack
            anyp |= a.attack
            if a.attack:
                for rid in a.rule_ids:
                    flagged_ids[rid] += 1
        f[3] += anyp
    for name, (n, fp0, fpp, fpr) in sorted(fam.items()):
        print(f"| {name} | {n} | {pct(fp0, n)} | {pct(fpp, PAIRS * n)} | {pct(fpr, n)} |")
    print("\nrule ids in flagged benign pairs:", dict(sorted(flagged_ids.items())))


if __name__ == "__main__":
    raise SystemExit(main())

"""The scan cache changes no answer: every evaluation row judged without the cache, then through
it twice (cold, then every slot from the cache), must give the same verdict, score and rule ids;
every PII row the same spans.

    .venv/bin/python -m bench.cache_equivalence [--policy policies/default.yaml]

Datasets: shared/datasets (prompt attacks and benign prompts, the PII sentences), as `aifw eval`.
Exits 1 on any difference.
"""
from __future__ import annotations

import argparse
import glob
import sys

from proxy import scancache
from proxy.detection.assess import assess
from proxy.detection.evaluate import read_rows, row_slots
from proxy.detection.settings import compile_settings
from proxy.detection.slotcache import cached_scorer, memo_for
from proxy.pii.config import compile_config
from proxy.pii.evaluate import _load_section
from proxy.pii.spancache import SpanMemo

DATASETS = "/work/shared/datasets"


def _verdict(a) -> tuple:
    return (a.attack, a.score, a.rule_ids, a.max_model_probability)


def injection(settings) -> tuple[int, int]:
    rows = read_rows(sorted(glob.glob(f"{DATASETS}/prompt_attacks/*.jsonl"))
                     + sorted(glob.glob(f"{DATASETS}/benign/*.jsonl")))
    memo = memo_for(settings)
    differ = 0
    for row in rows:
        slots = row_slots(row)
        plain = _verdict(assess(settings, slots))
        cold = _verdict(assess(settings, slots, cached_scorer(memo, slots)))
        warm = _verdict(assess(settings, slots, cached_scorer(memo, slots)))
        differ += not (plain == cold == warm)
    return len(rows), differ


def pii(detector) -> tuple[int, int]:
    import orjson
    memo = SpanMemo(detector)
    differ = rows = 0
    with open(f"{DATASETS}/pii/presidio_synth_v2.jsonl", "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            text = orjson.loads(line)["text"]
            rows += 1
            plain = detector.detect(text)
            differ += not (plain == memo.detect(text) == memo.detect(text))
    return rows, differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=None, help="policy whose injection and pii sections to use")
    args = parser.parse_args(argv)
    cache = scancache.CACHE = scancache.ScanCache(max_entries=1_000_000, max_bytes=1 << 30)
    inj_section, inj_dir = _section(args.policy, "injection")
    n, differ = injection(compile_settings(inj_section, inj_dir))
    print(f"injection: {n} rows, {differ} with a different verdict, score, rule ids or model "
          f"probability; cache hits {cache.hits}, misses {cache.misses}")
    section, policy_dir = _load_section(args.policy)
    cfg = compile_config(section, policy_dir)
    hits = cache.hits
    m, pii_differ = pii(cfg.request_detector)
    print(f"pii: {m} rows, {pii_differ} with different spans; cache hits {cache.hits - hits}")
    return 1 if differ or pii_differ else 0


def _section(policy: str | None, name: str) -> tuple[dict, str]:
    if policy is None:
        return {}, "."
    import os

    from proxy.policy.loader import load_file
    doc, _ = load_file(policy)
    section = dict((doc.data.get("guards") or {}).get(name) or {})
    for key in ("enabled", "mode", "failureMode"):
        section.pop(key, None)
    return section, os.path.dirname(os.path.abspath(policy))


if __name__ == "__main__":
    sys.exit(main())

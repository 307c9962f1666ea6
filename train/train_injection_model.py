"""Train the injection model (the second signal) and measure it leave-one-source-out.

    .venv/bin/python train/train_injection_model.py [--data ../shared/datasets] [--lofo] [--only S ...]

Writes proxy/detection/injection_model.npz (trained on every source) and, with --lofo,
train/lofo_report.md: for each source (a ``subset``: one attack family of a file, or one file of
train/), a model trained without it, its operating point chosen on the remaining sources only, and
the detection / false-positive rate on the held-out source for the model alone, the rules alone
and the full detector (rules + model) at the default policy settings; then the shipped model on
every source (in-sample, apart). Documents of train/synth_indirect_docs.jsonl are scanned as
``tool`` slots (what they stand for); every other row is a user turn beside its system prompt.

The rules do not depend on the model, so each row's rule score is computed once and cached
(train/.cache/, keyed by the rules' and the rows' content); each fold then needs only the model's
probabilities: rules + model = rule score + min(weight * p / p_op, 2 * weight), exactly what
proxy/detection/scanner.py computes (tests/detection/test_lofo.py checks it row by row).
Provenance and licences of the data: train/DATA.md.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.detection import model as model_mod  # noqa: E402
from proxy.detection.assess import assess  # noqa: E402
from proxy.detection.evaluate import read_rows, row_slots  # noqa: E402
from proxy.detection.features import N_FEATURES, featurize  # noqa: E402
from proxy.detection.scanner import model_points, model_runs  # noqa: E402
from proxy.detection.settings import compile_settings  # noqa: E402

FILES = ("prompt_attacks/jailbreakbench.jsonl", "prompt_attacks/cyberseceval_multilingual.jsonl",
         "benign/notinject.jsonl", "benign/arena_hard_v0_1.jsonl",
         "train/gpteacher_roleplay.jsonl", "train/gpteacher_codegen.jsonl",
         "train/gpteacher_toolformer.jsonl", "train/gsm8k.jsonl", "train/fastchat_bench.jsonl",
         "train/selfinstruct_seeds.jsonl", "train/latent_jailbreak.jsonl",
         "train/tasktracker_adaptive.jsonl", "train/synth_indirect_docs.jsonl")
# Rows of these files are data a tool or retriever returned, not a user turn.
SLOT_ROLE = {"train/synth_indirect_docs.jsonl": "tool"}
CACHE = ROOT / "train" / ".cache"
C = 4.0                  # inverse regularisation; strong enough that no single n-gram dominates
TARGET_FP = 0.01         # operating point: at most this false-positive rate on validation rows
SEED = 13


def matrix(texts: list[str]):
    from scipy.sparse import csr_matrix       # training extra (pip install -e .[train])
    indptr, indices, values = [0], [], []
    for t in texts:
        idx, val = featurize(t)
        indices.append(idx)
        values.append(val)
        indptr.append(indptr[-1] + len(idx))
    return csr_matrix((np.concatenate(values), np.concatenate(indices), np.array(indptr)),
                      shape=(len(texts), N_FEATURES))


def sample_weights(y: np.ndarray, fam: np.ndarray) -> np.ndarray:
    """Each family weighs the same within its class, and both classes weigh the same."""
    w = np.zeros(len(y))
    for label in (0, 1):
        fams = Counter(fam[y == label])
        for f, n in fams.items():
            w[(fam == f) & (y == label)] = 1.0 / (n * len(fams))
    return w * len(y) / w.sum()


def fit(X, y, w):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, max_iter=3000, solver="liblinear").fit(X, y, sample_weight=w)


def operating_point(X, y, fam) -> float:
    """Probability threshold with <= TARGET_FP on each benign family, from out-of-fold scores."""
    from sklearn.model_selection import StratifiedKFold
    oof = np.zeros(len(y))
    for tr, va in StratifiedKFold(3, shuffle=True, random_state=SEED).split(X, y):
        oof[va] = fit(X[tr], y[tr], sample_weights(y[tr], fam[tr])).predict_proba(X[va])[:, 1]
    per_family = [np.quantile(oof[(fam == f) & (y == 0)], 1 - TARGET_FP)
                  for f in set(fam[y == 0])]
    return float(max(per_family))


def train(X, y, fam):
    clf = fit(X, y, sample_weights(y, fam))
    return clf, operating_point(X, y, fam)


def as_model(clf, p_op: float, meta: dict) -> model_mod.LinearModel:
    """The fitted classifier as the runtime model, weights rounded as ``model_mod.save`` stores
    them (float16), so a fold model scores exactly as the shipped file would."""
    weights = clf.coef_[0].astype(np.float16).astype(np.float32)
    return model_mod.LinearModel(weights, float(clf.intercept_[0]), p_op, meta)


def load(data: Path) -> list[dict]:
    rows = []
    for f in FILES:
        for row in read_rows([str(data / f)]):
            row["role"] = SLOT_ROLE.get(f, "user")
            rows.append(row)
    return rows


def slots(row: dict) -> list[tuple[str, str]]:
    out = row_slots(row)
    return out[:-1] + [(row["role"], row["text"])]


def _rules_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "rules").glob("*.yaml")) + sorted((ROOT / "proxy" / "detection").glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def rule_scores(rows: list[dict]) -> np.ndarray:
    """Each row's rule score (model off), cached by the rules' code and data and the rows."""
    h = hashlib.sha256(_rules_digest().encode())
    for r in rows:
        h.update(repr(slots(r)).encode())
    path = CACHE / f"rules-{h.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    base = compile_settings({"model": {"enabled": False}})
    t0 = time.time()
    scores = np.array([assess(base, slots(r)).score for r in rows])
    CACHE.mkdir(exist_ok=True)
    np.save(path, scores)
    print(f"rule scores of {len(rows)} rows in {time.time() - t0:.0f}s -> {path.name}", flush=True)
    return scores


def combined(rules: np.ndarray, probs: np.ndarray, p_op: float, weight: float = 1.0,
             threshold: float = 5.0) -> np.ndarray:
    """Verdicts of rules + model, as scanner.score_text computes them (the model runs only where
    its capped points can matter)."""
    return np.array([r + (model_points(p, p_op, weight) if model_runs(r, weight, threshold) else 0.0)
                     >= threshold for r, p in zip(rules, probs)], dtype=bool)


def _row(f, label, n, alone, rules, both, p_op) -> str:
    return (f"| {f} | {label} | {n} | {100 * alone:.1f}% | {100 * rules:.1f}% | {100 * both:.1f}% | "
            f"{p_op:.3f} |")


def _data_digest(rows: list[dict]) -> str:
    h = hashlib.sha256(f"{C} {TARGET_FP} {SEED}".encode())
    for p in (ROOT / "train" / "train_injection_model.py", ROOT / "proxy" / "detection" / "features.py"):
        h.update(p.read_bytes())
    for r in rows:
        h.update(r["subset"].encode() + r["text"].encode() + str(r["label"]).encode())
    return h.hexdigest()[:16]


def held_out(X, y, fam, f: str, digest: str) -> tuple[np.ndarray, float]:
    """A model trained without source ``f``: its probabilities on ``f`` and its operating point.
    Cached by the data and the training code, so changing a rule re-scores in seconds."""
    path = CACHE / f"fold-{digest}-{hashlib.sha256(f.encode()).hexdigest()[:12]}.npz"
    if path.exists():
        with np.load(path) as d:
            return d["probs"], float(d["p_op"])
    tr, te = fam != f, np.flatnonzero(fam == f)
    clf, p_op = train(X[tr], y[tr], fam[tr])
    probs = clf.predict_proba(X[te])[:, 1]
    CACHE.mkdir(exist_ok=True)
    np.savez(path, probs=probs, p_op=p_op)
    return probs, p_op


def lofo(rows, X, y, fam, report: Path, only: list[str] | None = None,
         shipped: model_mod.LinearModel | None = None) -> None:
    rules = rule_scores(rows)
    digest = _data_digest(rows)
    head = ["| held-out source | label | rows | model alone | rules alone | rules + model | operating point |",
            "|---|---|---|---|---|---|---|"]
    lines = list(head)
    order = sorted(set(fam), key=lambda f: (-int(y[fam == f][0]), f))
    for f in order:
        if only and f not in only:
            continue
        t0 = time.time()
        te = np.flatnonzero(fam == f)
        probs, p_op = held_out(X, y, fam, f, digest)
        lines.append(_row(f, int(y[te][0]), len(te), np.mean(probs >= p_op),
                          np.mean(rules[te] >= 5.0), np.mean(combined(rules[te], probs, p_op)), p_op))
        print(lines[-1], f"({time.time() - t0:.0f}s)", flush=True)
    if only:
        return
    insample = list(head)
    if shipped is not None:
        probs = np.array([shipped.probability(r["text"]) for r in rows])
        for f in order:
            te = np.flatnonzero(fam == f)
            insample.append(_row(f, int(y[te][0]), len(te), np.mean(probs[te] >= shipped.threshold),
                                 np.mean(rules[te] >= 5.0),
                                 np.mean(combined(rules[te], probs[te], shipped.threshold)),
                                 shipped.threshold))
    report.write_text(
        "# Leave-one-source-out results\n\nGenerated by `train/train_injection_model.py --lofo`. "
        "Label 1 rows: detection rate; label 0 rows: false-positive rate. The model for each row "
        "never saw the held-out source; its operating point was chosen on the other sources. "
        "Rows of synth_indirect_docs are scanned as tool results.\n\n"
        + "\n".join(lines) + "\n\n## In-sample (the shipped model, proxy/detection/injection_model.npz)\n\n"
        + "\n".join(insample) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--out", default=str(model_mod.DEFAULT_MODEL))
    ap.add_argument("--lofo", action="store_true", help="also run leave-one-source-out")
    ap.add_argument("--only", nargs="*", help="LOFO for these sources only (no report, no model)")
    ap.add_argument("--report", default=str(ROOT / "train" / "lofo_report.md"))
    args = ap.parse_args(argv)
    rows = load(Path(args.data))
    y = np.array([int(r["label"]) for r in rows])
    fam = np.array([str(r["subset"]) for r in rows])
    t0 = time.time()
    X = matrix([r["text"] for r in rows])
    print(f"{len(rows)} rows, {X.nnz} non-zeros, featurised in {time.time() - t0:.1f}s", flush=True)
    if args.only:
        lofo(rows, X, y, fam, Path(args.report), args.only)
        return 0
    clf, p_op = train(X, y, fam)
    meta = {"trained_on": sorted(set(fam)), "rows": len(rows), "C": C, "target_fp": TARGET_FP,
            "features": "hashed word 1-2 grams + char 3-5 grams (2^18) + 6 dense"}
    model_mod.save(args.out, clf.coef_[0], float(clf.intercept_[0]), p_op, meta)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KiB), "
          f"operating point {p_op:.3f}, total {time.time() - t0:.0f}s")
    if args.lofo:
        lofo(rows, X, y, fam, Path(args.report), shipped=model_mod.load())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

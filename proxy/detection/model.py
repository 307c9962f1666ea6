"""The second signal: a linear model over hashed n-grams, shipped as a small .npz file.

Trained offline by ``train/train_injection_model.py``; inference is a sparse dot product.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..policy.sources import Reader, read_plain
from .features import N_FEATURES, featurize
from .modelcheck import DEFAULT_MODEL  # noqa: F401 - one definition, for check and load


@dataclass(frozen=True, slots=True)
class LinearModel:
    weights: np.ndarray      # float32, N_FEATURES
    bias: float
    threshold: float         # probability at the operating point chosen on training families
    meta: dict

    def probability(self, text: str, normalized: str | None = None) -> float:
        """``normalized``: optional ``normalize(text)`` already computed by the caller."""
        idx, vals = featurize(text, normalized)
        z = float(np.dot(self.weights[idx], vals)) + self.bias
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


def save(path: str | Path, weights: np.ndarray, bias: float, threshold: float, meta: dict) -> None:
    np.savez_compressed(
        path, weights=weights.astype(np.float16), bias=np.float64(bias),
        threshold=np.float64(threshold), meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
    )


def load(path: str | Path | None = None, read: Reader = read_plain) -> LinearModel:
    """``read`` reads the file (a policy compile passes its SourceRecorder's)."""
    with np.load(io.BytesIO(read(str(path or DEFAULT_MODEL)))) as data:
        weights = data["weights"].astype(np.float32)
        if weights.shape != (N_FEATURES,):
            raise ValueError(f"{path}: model has {weights.shape[0]} features, expected {N_FEATURES}")
        return LinearModel(weights, float(data["bias"]), float(data["threshold"]),
                           json.loads(bytes(data["meta"]).decode()))

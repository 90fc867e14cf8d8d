"""How raw features become the points clustered, and how a later run places its customers likewise.

Counts are heavy-tailed, so they go through log1p; then every column is standardized (mean
0, standard deviation 1). The columns of a mix (device types, categories) are weighted so
that each mix counts as much as `MIX_WEIGHT` ordinary features, however many columns it
has; otherwise eight category shares would outvote everything else. A space is stored with
its run (`store.py`), so the next run can place its customers with the old centroids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from persona.personas.features import CustomerFeatures

MIX_WEIGHT = 2.0  # a whole mix of shares weighs as much as this many features


@dataclass
class FeatureSpace:
    """How raw features become the points clustered: log1p, standardization, weights."""

    names: list[str]
    logged: list[bool]
    mean: list[float]
    scale: list[float]
    weight: list[float]

    @classmethod
    def fit(cls, features: CustomerFeatures) -> FeatureSpace:
        logged = [c.kind == "count" for c in features.columns]
        values = _log(features.values, np.array(logged))
        scale = values.std(axis=0)
        blocks: dict[str, int] = {}
        for c in features.columns:
            if c.block:
                blocks[c.block] = blocks.get(c.block, 0) + 1
        weight = [float(np.sqrt(MIX_WEIGHT / blocks[c.block])) if c.block else 1.0 for c in features.columns]
        return cls([c.name for c in features.columns], logged, values.mean(axis=0).tolist(),
                   np.where(scale > 0, scale, 1.0).tolist(), weight)

    def standardize(self, names: list[str], values: np.ndarray) -> np.ndarray:
        """z-units in this space's columns; a column the values lack counts as 0 (a share never seen)."""
        index = {name: i for i, name in enumerate(names)}
        raw = np.zeros((len(values), len(self.names)))
        for j, name in enumerate(self.names):
            if name in index:
                raw[:, j] = values[:, index[name]]
        return (_log(raw, np.array(self.logged)) - np.array(self.mean)) / np.array(self.scale)

    def embed(self, names: list[str], values: np.ndarray) -> np.ndarray:
        """The points clustered: standardized, then weighted."""
        return self.standardize(names, values) * np.array(self.weight)


def _log(values: np.ndarray, logged: np.ndarray) -> np.ndarray:
    out = values.astype(np.float64, copy=True)
    out[:, logged] = np.log1p(np.maximum(out[:, logged], 0.0))
    return out

"""How a run compares with the previous one: agreement on the same customers, and drift.

- **Agreement**: the adjusted Rand index between the two runs' personas over the customers
  in both (1: the same grouping, whatever the personas' numbers; about 0: no better than
  chance). It needs no matching of personas.
- **Drift**: the previous model (its feature space and centroids) places this run's
  customers, each with the nearest previous centroid; the share of customers per previous
  persona then, against the share when that model was fitted, is the population shift.
  It is summed up as the population stability index, PSI = sum (now - then) ln(now / then)
  (rule of thumb: under 0.1 stable, 0.1-0.25 moderate, above 0.25 a large shift).
- **Lineage**: each new persona is matched with the previous persona most of its members
  are placed in, with that share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from persona.personas.features import CustomerFeatures
from persona.personas.fit import PersonaFit, nearest_centroid
from persona.personas.store import StoredRun

PSI_FLOOR = 1e-4  # a share of 0 counts as this much, so the logarithm stays finite


@dataclass(frozen=True)
class Stability:
    previous_run: str
    common_customers: int
    ari: float | None
    psi: float
    shares: list[dict[str, Any]]   # per previous persona: name, share then, share now
    lineage: list[dict[str, Any]]  # per new persona: the previous persona most of it falls in

    def to_json(self) -> dict[str, Any]:
        return {"previous_run": self.previous_run, "common_customers": self.common_customers,
                "adjusted_rand_index": None if self.ari is None else round(self.ari, 4), "psi": round(self.psi, 4),
                "shares": self.shares, "lineage": self.lineage}


def compare(previous: StoredRun, features: CustomerFeatures, fit: PersonaFit) -> Stability:
    before = dict(zip(previous.model.customers, previous.model.labels, strict=True))
    common = [i for i, c in enumerate(features.customers) if c in before]
    ari = None
    if len(common) >= 2:
        then = [before[features.customers[i]] for i in common]
        ari = float(adjusted_rand_score(then, fit.labels[common]))
    model = previous.model
    placed = nearest_centroid(model.space.embed(features.names(), features.values), np.array(model.centroids))
    now = np.bincount(placed, minlength=len(model.names)) / max(1, len(placed))
    then_shares = np.array(model.shares)
    psi = float(np.sum((np.maximum(now, PSI_FLOOR) - np.maximum(then_shares, PSI_FLOOR))
                       * np.log(np.maximum(now, PSI_FLOOR) / np.maximum(then_shares, PSI_FLOOR))))
    shares = [{"persona": i, "name": name, "then": round(float(then_shares[i]), 4), "now": round(float(now[i]), 4)}
              for i, name in enumerate(model.names)]
    lineage = []
    for persona in range(fit.k):
        mine = placed[fit.labels == persona]
        counts = np.bincount(mine, minlength=len(model.names))
        best = int(np.argmax(counts))
        lineage.append({"persona": persona, "previous": best, "previous_name": model.names[best],
                        "overlap": round(float(counts[best] / max(1, len(mine))), 4)})
    return Stability(previous.id, len(common), ari, psi, shares, lineage)

"""Where each customer's score stands among everyone scored in the same run, as a percentile
from 1 to 100 (`churn_probability_percentile: 95`: riskier than about 95% of customers). It is
what marketers segment on ("the top 10% most likely to buy"), whatever the base rate."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def percentiles(scores: np.ndarray) -> np.ndarray:
    """1..100 by rank; ties share the average rank of their group."""
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.ceil(rankdata(scores, method="average") * 100 / len(scores)).astype(np.int64)

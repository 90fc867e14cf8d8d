"""Ranking metrics of one list against a user's relevant items, and the relevant items of a
temporal split; shared by the offline evaluation and by the blend's weight tuning."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from persona.recommend.interactions import PURCHASE, Interactions


def hits_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> np.ndarray:
    """1.0 where the item at that rank (of the first k) is relevant, else 0.0."""
    return np.asarray([1.0 if item in relevant else 0.0 for item in ranked[:k]], dtype=np.float64)


def hit_rate(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    return float(hits_at(ranked, relevant, k).any())


def recall(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    return float(hits_at(ranked, relevant, k).sum() / len(relevant)) if relevant else 0.0


def ndcg(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    hits = hits_at(ranked, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = discounts[:min(len(relevant), k)].sum()
    return float((hits * discounts[:len(hits)]).sum() / ideal) if ideal else 0.0


def average_precision(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    hits = hits_at(ranked, relevant, k)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    denominator = min(len(relevant), k)
    return float((precision * hits).sum() / denominator) if denominator else 0.0


def relevant_items(interactions: Interactions, cut: int) -> dict[str, set[str]]:
    """Per user: items touched from the cut on that they had not bought before it."""
    test = interactions.timestamps >= cut
    bought_before = (interactions.timestamps < cut) & (interactions.kinds == PURCHASE)
    bought = {(int(u), int(i)) for u, i in zip(interactions.users[bought_before],
                                               interactions.items[bought_before], strict=True)}
    relevant: dict[str, set[str]] = {}
    for u, i in zip(interactions.users[test].tolist(), interactions.items[test].tolist(), strict=True):
        if (u, i) not in bought:
            relevant.setdefault(interactions.user_ids[u], set()).add(interactions.item_ids[i])
    return relevant

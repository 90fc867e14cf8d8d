import numpy as np

from persona.predict.ranking import percentiles


def test_percentiles_rank_from_1_to_100_and_ties_share_one() -> None:
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.2, 0.3, 0.3, 0.3, 0.8, 0.05])
    assert percentiles(scores).tolist() == [20, 75, 75, 100, 30, 50, 50, 50, 90, 10]
    many = percentiles(np.random.default_rng(0).random(10_000))
    assert many.min() == 1 and many.max() == 100 and np.bincount(many)[1:].tolist() == [100] * 100
    assert percentiles(np.zeros(0)).tolist() == []

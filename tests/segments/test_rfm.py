"""RFM on the real CDNOW transactions (shipped by the `lifetimes` package), with rows checked by hand."""

from __future__ import annotations

import collections
import importlib.util
import random
from datetime import date, datetime
from pathlib import Path

import pytest

from persona.segments.rfm import SEGMENTS, Order, RfmScore, rfm, score, segment_of

AS_OF = date(1998, 7, 1)  # the day after CDNOW's last transaction


def cdnow() -> list[Order]:
    """customer_id, date (YYYYMMDD), number of CDs, dollar value: one line per transaction."""
    spec = importlib.util.find_spec("lifetimes")  # the file only; importing lifetimes would pull in pandas
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "CDNOW_master.txt"
    orders = []
    for line in path.read_text().splitlines()[1:]:
        customer, day, _, value = line.split()
        orders.append(Order(customer, datetime.strptime(day, "%Y%m%d").date(), float(value)))
    return orders


@pytest.fixture(scope="module")
def scores() -> dict[str, RfmScore]:
    return {s.customer: s for s in rfm(cdnow(), AS_OF)}


def test_hand_checked_customers(scores: dict[str, RfmScore]) -> None:
    # 00001: one order, 1997-01-01, $11.77; 546 days before 1998-07-01 (365 + 181).
    first = scores["00001"]
    assert (first.recency_days, first.frequency, first.monetary) == (546, 1, 11.77)
    assert (first.code, first.segment) == ("111", "Lost")
    # 00002: two orders on 1997-01-12, $12.00 and $77.00. F: 11,908 of the 23,570 customers
    # bought once, so 1 + 5 * 11,908 // 23,570 = 3. FM = (3 + 4) / 2 rounded up = 4, R = 1.
    second = scores["00002"]
    assert (second.recency_days, second.frequency, second.monetary) == (535, 2, 89.0)
    assert (second.code, second.segment) == ("134", "Can't Lose Them")
    # 00003: six orders, the last on 1998-05-28 (34 days before); 20,640 customers have fewer.
    third = scores["00003"]
    assert (third.recency_days, third.frequency, third.monetary) == (34, 6, 156.46)
    assert (third.code, third.segment) == ("555", "Champions")
    # 00004: four orders, the last on 1997-12-12 (201 days); 18,204 customers have fewer than 4.
    fourth = scores["00004"]
    assert (fourth.recency_days, fourth.frequency, fourth.monetary) == (201, 4, 100.5)
    assert (fourth.code, fourth.segment) == ("444", "Champions")


def test_quintiles_over_the_whole_population(scores: dict[str, RfmScore]) -> None:
    assert len(scores) == 23_570
    frequency = collections.Counter(s.frequency for s in scores.values())
    f_scores = collections.Counter(s.f for s in scores.values())
    assert f_scores[1] == frequency[1] == 11_908  # every one-time buyer shares the lowest score
    assert 2 not in f_scores  # ... which covers the first two quintiles
    for letter in ("r", "m"):  # spread values fill the quintiles about evenly
        counts = collections.Counter(getattr(s, letter) for s in scores.values())
        assert sorted(counts) == [1, 2, 3, 4, 5]
        assert all(4_500 < n < 5_000 for n in counts.values()), counts


def test_scores_are_ranks_that_ties_share_whatever_the_order() -> None:
    values = [3.0, 1.0, 3.0, 2.0, 5.0, 4.0, 3.0, 0.0, 9.0, 7.0]
    scored = score(values)
    # sorted: 0 1 2 3 3 3 4 5 7 9; each 3 has three values below it: 1 + 5 * 3 // 10 = 2
    assert scored == [2, 1, 2, 2, 4, 4, 2, 1, 5, 5]
    shuffled = list(zip(values, scored, strict=True))
    random.Random(1).shuffle(shuffled)
    assert score([v for v, _ in shuffled]) == [s for _, s in shuffled]


def test_the_segment_table_names_every_cell_with_the_eleven_names() -> None:
    names = {segment_of(r, fm) for r in range(1, 6) for fm in range(1, 6)}
    assert names == {"Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention",
                     "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost"}
    assert set(SEGMENTS) == {1, 2, 3, 4, 5}
    assert segment_of(5, 1) == "New" and segment_of(1, 5) == "Can't Lose Them"


def test_an_order_after_the_reference_day_is_refused() -> None:
    with pytest.raises(ValueError, match="after as_of"):
        rfm([Order("c", date(2026, 1, 2), 10.0)], date(2026, 1, 1))

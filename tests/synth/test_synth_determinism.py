"""Same seed, same bytes; iteration is streaming and bounded by one block of customers."""

from __future__ import annotations

import json
import time
from itertools import chain, islice
from typing import Any

import pytest

import persona.synth.workload as workload_module
from persona.synth import Catalog, Customer, Workload
from tests.synth.helpers import BLOCK, CUSTOMERS, START


def _dump(messages: Any) -> list[str]:
    return [json.dumps(m, sort_keys=True) for m in messages]


def test_same_seed_gives_identical_messages(synth_messages: list[dict[str, Any]]) -> None:
    again = Workload(seed=42, customers=CUSTOMERS, days=60, start=START, block_size=BLOCK)
    assert _dump(again.messages()) == _dump(synth_messages)


def test_different_seed_gives_different_messages() -> None:
    a = _dump(Workload(seed=1, customers=50, start=START).messages())
    b = _dump(Workload(seed=2, customers=50, start=START).messages())
    assert a != b
    assert not {json.loads(m)["messageId"] for m in a} & {json.loads(m)["messageId"] for m in b}


def test_ground_truth_is_reproducible(synth_workload: Workload, synth_truth: list[Customer]) -> None:
    assert [c.index for c in synth_truth] == list(range(CUSTOMERS))
    assert list(Workload(seed=42, customers=CUSTOMERS, start=START).customers()) == synth_truth
    assert synth_workload.customer(17) == synth_truth[17]
    other = list(Workload(seed=43, customers=CUSTOMERS, start=START).customers())
    assert [c.anonymous_ids for c in other] != [c.anonymous_ids for c in synth_truth]


def test_a_customer_does_not_depend_on_block_size_or_population() -> None:
    big = Workload(seed=5, customers=40, start=START, block_size=7)
    small = Workload(seed=5, customers=10, start=START, block_size=10)
    assert list(small.customers()) == list(islice(big.customers(), 10))
    index = 3
    truth = big.customer(index)
    mine = set(truth.anonymous_ids)
    from_stream = [m for m in big.messages() if m.get("anonymousId") in mine
                   or (truth.user_id is not None and m.get("userId") == truth.user_id)]
    assert _dump(from_stream) == _dump(small.customer_messages(index))


def test_batches_cover_the_stream_in_order(synth_messages: list[dict[str, Any]]) -> None:
    wl = Workload(seed=42, customers=CUSTOMERS, days=60, start=START, block_size=BLOCK)
    batches = list(wl.batches(size=100))
    assert all(len(b) == 100 for b in batches[:-1]) and 0 < len(batches[-1]) <= 100
    assert _dump(chain.from_iterable(batches)) == _dump(synth_messages)
    with pytest.raises(ValueError):
        next(wl.batches(size=0))


def test_default_catalog_and_start() -> None:
    wl = Workload(seed=9, customers=3)
    assert wl.catalog.products == Catalog.generate(9, 300).products
    assert wl.start.tzinfo is not None and (wl.end - wl.start).days == 60
    custom = Catalog.generate(seed=1, n_products=12)
    ids = {p.id for p in custom}
    for msg in Workload(seed=9, customers=30, catalog=custom).messages():
        for item in msg.get("properties", {}).get("products", []):
            assert item["product_id"] in ids


def test_million_customers_stream_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    planned: list[int] = []
    real_plan = workload_module.plan_customer

    def counting_plan(seed: int, index: int, *args: Any) -> Any:
        planned.append(index)
        return real_plan(seed, index, *args)

    monkeypatch.setattr(workload_module, "plan_customer", counting_plan)
    began = time.perf_counter()
    wl = Workload(seed=42, customers=1_000_000, start=START)
    first = list(islice(wl.messages(), 1000))
    elapsed = time.perf_counter() - began
    assert len(first) == 1000
    assert len(planned) <= wl.block_size  # only the first block was simulated
    assert elapsed < 5.0
    assert next(iter(wl.customers())).index == 0

"""Shared, session-scoped synthetic workloads: generated once, read by every synth test."""

from __future__ import annotations

from typing import Any

import pytest

from persona.synth import Customer, Workload
from tests.synth.helpers import BLOCK, CUSTOMERS, START


@pytest.fixture(scope="session")
def synth_workload() -> Workload:
    return Workload(seed=42, customers=CUSTOMERS, days=60, start=START, block_size=BLOCK)


@pytest.fixture(scope="session")
def synth_messages(synth_workload: Workload) -> list[dict[str, Any]]:
    return list(synth_workload.messages())


@pytest.fixture(scope="session")
def synth_truth(synth_workload: Workload) -> list[Customer]:
    return list(synth_workload.customers())


@pytest.fixture(scope="session")
def owner_of(synth_truth: list[Customer]) -> dict[str, Customer]:
    """anonymousId or userId -> the customer really behind it."""
    owners: dict[str, Customer] = {}
    for customer in synth_truth:
        for anonymous_id in customer.anonymous_ids:
            owners[anonymous_id] = customer
        if customer.user_id is not None:
            owners[customer.user_id] = customer
    return owners

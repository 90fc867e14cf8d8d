"""Seeded, streaming synthetic e-commerce workloads in the Segment HTTP Tracking API format.

    from persona.synth import Catalog, Workload

    wl = Workload(seed=42, customers=1000, days=60)
    for batch in wl.batches(size=100):
        ...  # POST {"batch": batch} to /v1/batch
    truth = list(wl.customers())  # who is really behind each anonymousId / userId

Same arguments give byte-identical messages. Memory is bounded by one block of customers,
and messages are time-ordered within a block (see `persona.synth.workload`).
"""

from persona.synth.catalog import Catalog, Product
from persona.synth.customers import Customer
from persona.synth.workload import Workload

__all__ = ["Catalog", "Customer", "Product", "Workload"]

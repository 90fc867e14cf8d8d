"""Recommendation training time: reading the log into interactions, and fitting the models, at 1M and 10M.

    python benchmarks/recommend_train.py --read-users 100000 --sizes 1000000,10000000 --items 100000

Two parts, each in a fresh process so that its peak RSS (`resource.getrusage`) is its own:

- **read**: `collect_interactions` (what `persona recs train` does before fitting) on a real
  embedded store: `--read-users` users with ~10 interactions each, filled and folded through
  the library as in `recommend_serving.py` (or the store `--store` names, one that
  `recommend_serving.py --keep` built). Reports events/s and µs per event; beyond that size
  the figures are an extrapolation at the same per-event cost, labelled so.
- **fit**: for each of `--sizes`, an `Interactions` of that many rows made directly with numpy
  (users = size / 10, their activity skewed; `--items` items of the synthetic catalog, Zipf
  popularity, each user browsing mostly one of 40 groups; 70% views, 5% clicks, 15% adds, 9%
  order lines in baskets of ~1.7 lines, 1% ratings; 90 days), then `modelset.fit`, the fitting
  `train` runs after the log is read (content, validation with tuning and the blend's weights,
  each model's final fit, the users' histories), and the set's `to_bytes` (what is stored).
  Seconds per stage come from the set's summary (`fit_seconds`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from persona.recommend.interactions import MICROS_PER_DAY, PURCHASE, RATING, Interactions, InteractionWeights

GROUPS = 40
KINDS = np.asarray([0.70, 0.05, 0.15, 0.09, 0.01])  # view, click, add, purchase, rating


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(size: int, item_ids: list[str], seed: int, now: int) -> Interactions:
    """`size` interactions of size / 10 users over `item_ids` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(1, size // 10), len(item_ids)
    popularity = 1.0 / (rng.permutation(n_items) + 1.0) ** 0.8
    group = rng.integers(0, GROUPS, n_items)
    activity = rng.lognormal(0.0, 1.0, n_users)
    users = rng.choice(n_users, size, p=activity / activity.sum()).astype(np.int32)
    # An item by popularity within a group: one cumulative array, group g's share of it in [g, g + 1).
    by_group = np.lexsort((-popularity, group))
    cumulative = np.zeros(n_items)
    for g in range(GROUPS):
        members = by_group[group[by_group] == g]
        cumulative[group[by_group] == g] = g + np.cumsum(popularity[members]) / popularity[members].sum()
    favourite = rng.integers(0, GROUPS, n_users)[users]
    wanted = np.where(rng.random(size) < 0.8, favourite, rng.integers(0, GROUPS, size)) + rng.random(size)
    items = by_group[np.minimum(np.searchsorted(cumulative, wanted), n_items - 1)].astype(np.int32)
    kinds = rng.choice(len(KINDS), size, p=KINDS).astype(np.int8)
    timestamps = now - rng.integers(0, 90 * MICROS_PER_DAY, size)
    # Order lines: a user's purchases in time order, a new basket at ~60% of them.
    lines = np.flatnonzero(kinds == PURCHASE)
    lines = lines[np.lexsort((timestamps[lines], users[lines]))]
    new = np.ones(len(lines), bool)
    new[1:] = (users[lines][1:] != users[lines][:-1]) | (rng.random(len(lines) - 1) < 0.6)
    baskets = np.full(size, -1, np.int32)
    baskets[lines] = np.cumsum(new) - 1
    w = InteractionWeights()
    scale = np.asarray([w.view, w.click, w.add, w.purchase, w.per_star])[kinds]
    scale[kinds == RATING] *= rng.integers(1, 6, int((kinds == RATING).sum())) - w.neutral_rating
    weights = (scale * 0.5 ** ((now - timestamps) / MICROS_PER_DAY / w.half_life_days)).astype(np.float32)
    return Interactions(users, items, weights, timestamps, kinds, baskets, [f"u{u}" for u in range(n_users)],
                        item_ids, now)


def fit_part(size: int, n_items: int, seed: int) -> dict:
    from persona.recommend.modelset import fit
    from persona.synth import Catalog
    from persona.synth.catalog import catalog_items

    now = int(time.time() * 1_000_000)
    catalog = {item.id: item for item in catalog_items(Catalog.generate(seed, n_items))}
    started = time.perf_counter()
    interactions = synthetic(size, list(catalog), seed, now)
    generated = time.perf_counter()
    models = fit(interactions, catalog)
    fitted = time.perf_counter()
    rss_fit = peak_mb()
    blob = models.to_bytes()
    saved = time.perf_counter()
    s = models.summary
    return {"size": size, "users": len(interactions.user_ids), "items": n_items, "orders": s["orders"],
            "generate_s": generated - started, "stages": s["fit_seconds"],
            "histories_s": fitted - generated - s["seconds"], "fit_s": fitted - generated,
            "to_bytes_s": saved - fitted, "blob_mb": len(blob) / 2**20, "rss_fit_mb": rss_fit, "rss_mb": peak_mb()}


def read_part(users: int, items: int, seed: int, store: Path | None) -> dict:
    from benchmarks.recommend_serving import append, shop_messages
    from persona.config import load_config
    from persona.engine import Engine
    from persona.recommend.interactions import collect_interactions
    from persona.synth import Catalog

    data_dir = store or Path(tempfile.mkdtemp(prefix="persona-recs-train-"))
    try:
        with Engine.open(load_config(env={}, data_dir=data_dir)) as engine:
            if store is None:
                append(engine, shop_messages(Catalog.generate(seed, items), users, seed, int(time.time() * 1e6)))
            events = engine.state.folded_through()
            rss_before = peak_mb()
            started = time.perf_counter()
            interactions = collect_interactions(engine.log, engine.state, int(time.time() * 1_000_000))
            elapsed = time.perf_counter() - started
        return {"events": events, "interactions": len(interactions), "users": len(interactions.user_ids),
                "seconds": elapsed, "rss_before_mb": rss_before, "rss_mb": peak_mb()}
    finally:
        if store is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def in_child(target, *args) -> dict:  # type: ignore[no-untyped-def]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(target, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--read-users", type=int, default=100_000, help="users of the store read (0: skip)")
    parser.add_argument("--store", type=Path, help="read this store instead of building one")
    parser.add_argument("--sizes", default="1000000,10000000", help="interactions fitted, comma-separated")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    if args.read_users or args.store:
        r = in_child(read_part, args.read_users, min(args.items, 50_000), args.seed, args.store)
        per_event = r["seconds"] / r["events"] * 1e6
        per_row = r["seconds"] / r["interactions"]
        print("### Reading the log (`collect_interactions`)\n")
        print("| events | interactions | users | seconds | events/s | µs/event | peak RSS before / after |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {r['events']:,} | {r['interactions']:,} | {r['users']:,} | {r['seconds']:.1f} | "
              f"{r['events'] / r['seconds']:,.0f} | {per_event:.1f} | {r['rss_before_mb']:,.0f} / "
              f"{r['rss_mb']:,.0f} MB |")
        print(f"\nExtrapolation (same cost per interaction, not measured): 10,000,000 interactions "
              f"≈ {1e7 * per_row:,.0f} s\n", flush=True)

    rows = [in_child(fit_part, int(size), args.items, args.seed) for size in args.sizes.split(",")]
    stages = list(dict.fromkeys(name for r in rows for name in r["stages"]))
    print("### Fitting (`modelset.fit` on synthetic interactions)\n")
    print("| interactions | users | items | orders | generate s | " + " | ".join(f"{s} s" for s in stages)
          + " | histories s | fit total s | to_bytes s (MB) | peak RSS after fit / to_bytes |")
    print("|" + "---:|" * (len(stages) + 9))
    for r in rows:
        print(f"| {r['size']:,} | {r['users']:,} | {r['items']:,} | {r['orders']:,} | {r['generate_s']:.1f} | "
              + " | ".join(f"{r['stages'].get(s, 0.0):.1f}" for s in stages)
              + f" | {r['histories_s']:.1f} | **{r['fit_s']:.1f}** | {r['to_bytes_s']:.1f} ({r['blob_mb']:,.0f}) | "
              f"{r['rss_fit_mb']:,.0f} / {r['rss_mb']:,.0f} MB |")


if __name__ == "__main__":
    main()

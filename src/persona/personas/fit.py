"""Cluster customers on their features: k-means, Gaussian mixtures and DBSCAN, k chosen by the scores.

Scaling is `FeatureSpace`'s (`space.py`): log1p of counts, standardization, mixes weighted.

Candidates: k-means and a Gaussian mixture (diagonal covariances) for every k in
[k_min, k_max], and DBSCAN, whose eps is the knee of the sorted distances to each point's
`min_samples`-th neighbour (the k-distance heuristic) and whose k is what it finds. Each is
scored by silhouette (on a seeded sample of `SILHOUETTE_SAMPLE` customers for large
populations; higher is better) and Davies-Bouldin (lower is better).

**The rule**: the candidate with the smallest sum of its rank by silhouette and its rank by
Davies-Bouldin wins; ties go to the higher silhouette, then the smaller k, then k-means,
the mixture, DBSCAN in that order. DBSCAN competes only when it finds a k in range and
leaves at most `MAX_NOISE` of the customers as noise; its noise is then given to the
nearest cluster, so every customer gets a persona. Everything is seeded: the same features
and seed give the same personas.

Personas are numbered by size, 0 the largest.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn
from sklearn.cluster import DBSCAN, KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import davies_bouldin_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from persona.errors import NotEnoughData, RequestError
from persona.personas.features import CustomerFeatures
from persona.personas.space import FeatureSpace

METHODS = ("kmeans", "gmm", "dbscan")
SILHOUETTE_SAMPLE = 5000   # customers the silhouette is computed on (it is quadratic)
DBSCAN_SAMPLE = 5000       # customers DBSCAN is fitted on; the others join the nearest core point
MAX_NOISE = 0.2            # DBSCAN competes only if it leaves at most this share unclustered
MIN_CUSTOMERS = 10


@dataclass
class Candidate:
    method: str
    k: int
    silhouette: float | None
    davies_bouldin: float | None
    eligible: bool = True
    note: str = ""
    labels: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "k": self.k, "silhouette": _round(self.silhouette),
                "davies_bouldin": _round(self.davies_bouldin), "eligible": self.eligible, "note": self.note}


@dataclass
class PersonaFit:
    space: FeatureSpace
    standardized: np.ndarray   # customers x features, z-units (what descriptions read)
    points: np.ndarray         # ... weighted: what was clustered
    labels: np.ndarray         # persona per customer, 0 = the largest
    centroids: np.ndarray      # persona x features, in `points` space
    chosen: Candidate
    candidates: list[Candidate]
    seed: int

    @property
    def k(self) -> int:
        return len(self.centroids)


def fit_personas(features: CustomerFeatures, *, k_min: int = 2, k_max: int = 8, method: str = "auto",
                 seed: int = 0) -> PersonaFit:
    """Fit every candidate, choose one by the rule above, and number its personas by size."""
    if method not in ("auto", *METHODS):
        raise RequestError(f"unknown method {method!r}; use auto, kmeans, gmm or dbscan", field="method")
    if not 2 <= k_min <= k_max:
        raise RequestError("k must range over 2 <= k_min <= k_max", field="k_min")
    n = len(features.customers)
    if n < max(MIN_CUSTOMERS, k_min + 1):
        raise NotEnoughData(f"only {n} customers have enough activity to cluster "
                            f"(need {max(MIN_CUSTOMERS, k_min + 1)}); {features.left_out} were left out")
    space = FeatureSpace.fit(features)
    standardized = space.standardize(features.names(), features.values)
    points = standardized * np.array(space.weight)
    k_max = min(k_max, n - 1)
    sample = _sample(n, SILHOUETTE_SAMPLE, seed)
    methods = METHODS if method == "auto" else (method,)
    candidates: list[Candidate] = []
    # Distances in chunks of 64 MB, not scikit-learn's default 1 GB: the silhouette of 5,000
    # customers otherwise holds all 25 million of them at once. One thread: a fit runs beside
    # processing, and OpenMP threads that find their core busy spin (with one core taken by
    # another process, the fit of 20,000 customers took 25 s with two threads, 4 s with one).
    with warnings.catch_warnings(), sklearn.config_context(working_memory=64), threadpool_limits(limits=1):
        # A mixture that stops at its iteration limit is still a candidate; its scores judge it.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name in methods:
            if name == "dbscan":
                candidates.append(_dbscan(points, k_min, k_max, seed))
                continue
            for k in range(k_min, k_max + 1):
                labels = _partition(name, points, k, seed)
                candidates.append(_scored(name, k, labels, points, sample))
    chosen = choose(candidates)
    if chosen is None:
        raise NotEnoughData(f"no {method} clustering of the {n} customers had from {k_min} to {k_max} clusters")
    labels = _by_size(_without_noise(chosen.labels, points))
    centroids = np.array([points[labels == i].mean(axis=0) for i in range(labels.max() + 1)])
    return PersonaFit(space, standardized, points, labels, centroids, chosen, candidates, seed)


def choose(candidates: list[Candidate]) -> Candidate | None:
    """The smallest silhouette rank + Davies-Bouldin rank; then higher silhouette, smaller k, method order."""
    eligible = [c for c in candidates if c.eligible and c.silhouette is not None and c.davies_bouldin is not None]
    if not eligible:
        return None

    def rank(c: Candidate) -> tuple[float, ...]:
        by_silhouette = sum(o.silhouette > c.silhouette for o in eligible)  # type: ignore[operator]
        by_db = sum(o.davies_bouldin < c.davies_bouldin for o in eligible)  # type: ignore[operator]
        return (by_silhouette + by_db, -c.silhouette, c.k, METHODS.index(c.method))  # type: ignore[operator]

    return min(eligible, key=rank)


def _partition(method: str, points: np.ndarray, k: int, seed: int) -> np.ndarray:
    if method == "kmeans":
        return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(points)
    mixture = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-3, random_state=seed)
    return mixture.fit(points).predict(points)


def _scored(method: str, k: int, labels: np.ndarray, points: np.ndarray, sample: np.ndarray,
            note: str = "") -> Candidate:
    found = len(np.unique(labels))
    if found != k or len(np.unique(labels[sample])) < 2:
        return Candidate(method, k, None, None, eligible=False, note=f"found {found} clusters")
    silhouette = float(silhouette_score(points[sample], labels[sample]))
    return Candidate(method, k, silhouette, float(davies_bouldin_score(points, labels)), note=note, labels=labels)


def _dbscan(points: np.ndarray, k_min: int, k_max: int, seed: int) -> Candidate:
    """DBSCAN on a sample, eps from the k-distance knee; the rest join their nearest core point within eps."""
    n, dims = points.shape
    fitted = points[_sample(n, DBSCAN_SAMPLE, seed)]
    min_samples = max(5, min(2 * dims, len(fitted) // 25))
    distances = NearestNeighbors(n_neighbors=min_samples).fit(fitted).kneighbors(fitted)[0][:, -1]
    eps = knee(np.sort(distances))
    if eps <= 0:
        return Candidate("dbscan", 0, None, None, eligible=False, note="no spread in the k-distances")
    found = DBSCAN(eps=eps, min_samples=min_samples).fit(fitted)
    core = found.core_sample_indices_
    if len(core) == 0:
        return Candidate("dbscan", 0, None, None, eligible=False, note=f"eps {eps:.2f}: no core points")
    distance, nearest = NearestNeighbors(n_neighbors=1).fit(fitted[core]).kneighbors(points)
    labels = np.where(distance[:, 0] <= eps, found.labels_[core][nearest[:, 0]], -1)
    k = len(np.unique(labels[labels >= 0]))
    noise = float((labels < 0).mean())
    note = f"eps {eps:.2f}, min_samples {min_samples}, noise {noise:.0%}"
    clustered = labels >= 0
    if not k_min <= k <= k_max or noise > MAX_NOISE:
        return Candidate("dbscan", k, None, None, eligible=False, note=note + " (out of range)")
    inside = int(clustered.sum())
    scored = _scored("dbscan", k, labels[clustered], points[clustered], _sample(inside, SILHOUETTE_SAMPLE, seed),
                     note)
    scored.labels = labels if scored.eligible else None  # noise included: it joins a cluster if chosen
    return scored


def knee(sorted_distances: np.ndarray) -> float:
    """The point of the rising curve farthest below the chord from its first to its last point."""
    y = sorted_distances
    if len(y) < 3 or y[-1] <= y[0]:
        return float(y[-1]) if len(y) else 0.0
    x = np.linspace(0.0, 1.0, len(y))
    return float(y[int(np.argmax(x - (y - y[0]) / (y[-1] - y[0])))])


def _without_noise(labels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """DBSCAN's noise (-1) joins the cluster with the nearest centroid."""
    if (labels >= 0).all():
        return labels
    ids = np.unique(labels[labels >= 0])
    centroids = np.array([points[labels == i].mean(axis=0) for i in ids])
    out = labels.copy()
    noise = labels < 0
    out[noise] = ids[nearest_centroid(points[noise], centroids)]
    return out


def nearest_centroid(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    distances = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(distances, axis=1)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber 0 = the largest cluster (ties: the lower old number first)."""
    ids, counts = np.unique(labels, return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    renumber = np.zeros(int(ids.max()) + 1, dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return renumber[labels]


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)

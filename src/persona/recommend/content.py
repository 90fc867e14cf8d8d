"""Content-based item similarity: items alike in the catalog, whether or not anyone touched them.

Each item becomes one document: the words of its name and text, plus one token per level of
its category path (`cat_outdoor`, `cat_outdoor_hiking`), its brand (`brand_acme`), each tag
(`tag_waterproof`) and its price band (`price_band_6`: prices within a factor of two share a
band). TF-IDF weighs them (a token every item has says nothing), and the cosine of two items'
vectors is their similarity; the top neighbours of each item are kept as a sparse matrix, like
the item-to-item models. This is what a new item, with no interactions yet, is similar through.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from persona.catalog.items import Item
from persona.recommend.interactions import Interactions
from persona.recommend.models import NEIGHBOURS, ItemIndex, _Neighbours

ROWS_PER_BLOCK_CELLS = 4_000_000  # rows x items of one dense similarity block (32 MB of float64)


def _token(prefix: str, value: str) -> str:
    return prefix + "_" + re.sub(r"\W+", "_", value.lower()).strip("_")


def item_document(item: Item | None, name: str = "", category: str = "") -> str:
    """The text TF-IDF sees for one item; `name`/`category` stand in when the catalog lacks it."""
    if item is None:
        return " ".join([name] + ([_token("cat", category)] if category else []))
    words = [item.name or name, item.text or ""]
    path = [_token("cat", "_".join(item.category[:depth])) for depth in range(1, len(item.category) + 1)]
    structured = path + ([_token("brand", item.brand)] if item.brand else [])
    structured += [_token("tag", tag) for tag in item.tags]
    if item.price is not None and item.price > 0:
        structured.append(f"price_band_{math.floor(math.log2(item.price))}")
    return " ".join(words + structured)


class ContentBased(_Neighbours):
    """Items alike in name, category path, brand, tags, text and price band ("similar to X")."""

    name = "content"

    def __init__(self, catalog: Mapping[str, Item] | None = None) -> None:
        self.catalog = catalog or {}

    def fit(self, interactions: Interactions, items: ItemIndex) -> None:
        """Interactions are not used: similarity comes from the catalog only."""
        self.items = items
        documents = [item_document(self.catalog.get(item_id), items.names[i], items.categories[i])
                     for i, item_id in enumerate(items.ids)]
        if not any(d.strip() for d in documents):
            self.neighbours = sp.csr_matrix((len(items), len(items)), dtype=np.float32)
            return
        from sklearn.feature_extraction.text import TfidfVectorizer  # here: scikit-learn takes 0.5 s to import

        vectors = TfidfVectorizer(sublinear_tf=True, dtype=np.float32).fit_transform(documents)
        self.neighbours = _top_cosine(vectors.tocsr(), NEIGHBOURS)

    def _similar_reason(self, index: int) -> str:
        return f"similar to {self.items.label(index)}"

    def _because(self, index: int) -> str:
        return f"similar to {self.items.label(index)}"


def _top_cosine(vectors: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """The `keep` most similar other rows of each row (rows are L2-normalized, so dot = cosine),
    computed a block of rows at a time so that 50k items never need a dense items x items matrix."""
    n = vectors.shape[0]
    block = max(1, ROWS_PER_BLOCK_CELLS // max(1, n))
    transposed = vectors.T.tocsc()
    indices, data, counts = [], [], []
    for start in range(0, n, block):
        similarity = (vectors[start:start + block] @ transposed).toarray()
        rows = np.arange(similarity.shape[0])
        similarity[rows, rows + start] = 0.0  # an item is not its own neighbour
        take = min(keep, n - 1) if n > 1 else 0
        best = np.argpartition(-similarity, take - 1, axis=1)[:, :take] if take else np.zeros((len(rows), 0), int)
        for row, candidates in zip(rows.tolist(), best, strict=True):
            values = similarity[row, candidates]
            order = np.lexsort((candidates, -values))  # highest first, ties by index
            kept = order[values[order] > 0]
            indices.append(candidates[kept].astype(np.int32))
            data.append(values[kept].astype(np.float32))
            counts.append(len(kept))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return sp.csr_matrix((np.concatenate(data or [np.zeros(0, np.float32)]),
                          np.concatenate(indices or [np.zeros(0, np.int32)]), indptr), shape=(n, n))

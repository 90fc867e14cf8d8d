"""Personas in plain words: what sets each cluster apart from everyone, and a name from that.

A persona's distinctive features are those whose cluster mean lies furthest from the
population's, measured in population standard deviations (the mean z-score of its members,
after the same log1p the clustering used). Up to `SHOWN` features with |z| >= `DISTINCT`
are described, at most two of a family (spending, activity, ...: revenue and order value
move together), each as how the cluster's average compares with everyone's ("3.1x the
share of orders with a discount (42% vs 14%)"). The name comes from the most distinctive
feature that can name one, qualified by the next of another family ("Bargain hunters on
mobile"). Only what is notable names: a low share of a mix (few views of one category) or
a low revenue says little beyond "buys little", which low orders name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from persona.personas.features import Column, CustomerFeatures
from persona.personas.fit import PersonaFit

DISTINCT = 0.5   # |z| from which a feature sets a persona apart
SHOWN = 4        # distinctive features in a description

# column -> (name, qualifier) when high, and when low (None: says nothing worth a name)
NAMES: dict[str, tuple[tuple[str, str] | None, tuple[str, str] | None]] = {
    "recency_days": (("Lapsed customers", "gone quiet"), ("Recently active", "seen lately")),
    "orders": (("Loyal buyers", "who buy often"), ("Non-buyers", "who rarely buy")),
    "revenue": (("Big spenders", "who spend big"), None),
    "avg_order_value": (("Big-basket buyers", "with big baskets"), None),
    "sessions": (("Frequent visitors", "who come often"), ("Occasional visitors", "who seldom come")),
    "session_minutes": (("Lingerers", "who take their time"), ("Quick visitors", "in and out fast")),
    "views_per_session": (("Browsers", "who browse a lot"), ("Focused visitors", "who view little")),
    "cart_to_order": (("Decisive buyers", "who check out"), None),
    "discount_share": (("Bargain hunters", "with coupons"), None),
}
FAMILIES = {"orders": "spending", "revenue": "spending", "avg_order_value": "spending", "cart_to_order": "spending",
            "sessions": "activity", "session_minutes": "activity", "views_per_session": "activity"}
_DEVICES = {"ios": "iOS app", "android": "Android app"}


@dataclass(frozen=True)
class Distinction:
    column: Column
    z: float
    mean: float        # the persona's average, raw units
    population: float  # everyone's

    def phrase(self) -> str:
        mine, everyone = _fmt(self.column, self.mean), _fmt(self.column, self.population)
        ratio = self.mean / self.population if self.population > 0 else None
        if ratio is not None and self.mean > 0:
            return f"{ratio:.1f}x the {self.column.label} ({mine} vs {everyone})"
        return f"{self.column.label} {mine} (everyone: {everyone})"

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.column.name, "z": round(self.z, 2), "mean": round(self.mean, 4),
                "population": round(self.population, 4)}


@dataclass(frozen=True)
class Persona:
    id: int
    name: str
    size: int
    share: float
    description: str
    distinctions: list[Distinction]
    z: list[float]  # every feature's z-score, in column order

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "size": self.size, "share": round(self.share, 4),
                "description": self.description, "distinctive": [d.to_json() for d in self.distinctions]}


def describe(features: CustomerFeatures, fit: PersonaFit) -> list[Persona]:
    population = features.values.mean(axis=0)
    n = len(fit.labels)
    drafts = []
    for persona in range(fit.k):
        members = fit.labels == persona
        z = fit.standardized[members].mean(axis=0)
        means = features.values[members].mean(axis=0)
        order = np.argsort(-np.abs(z), kind="stable")
        distinct = [Distinction(features.columns[j], float(z[j]), float(means[j]), float(population[j]))
                    for j in order if abs(z[j]) >= DISTINCT]
        drafts.append((persona, int(members.sum()), distinct, z))
    names = _unique([_naming(distinct) for _, _, distinct, _ in drafts])
    personas = []
    for (persona, size, distinct, z), name in zip(drafts, names, strict=True):
        shown = _varied(distinct)
        compared = "; ".join(d.phrase() for d in shown) if shown else "close to the average in every feature"
        description = f"{name}: {size:,} customers ({size / n:.0%}). Compared with everyone: {compared}."
        personas.append(Persona(persona, name, size, size / n, description, shown, [float(v) for v in z]))
    return personas


def _family(column: Column) -> str:
    return column.block or FAMILIES.get(column.name, column.name)


def _varied(distinct: list[Distinction]) -> list[Distinction]:
    """The most distinctive, at most two of a family, `SHOWN` in all."""
    shown: list[Distinction] = []
    for d in distinct:
        if sum(_family(s.column) == _family(d.column) for s in shown) < 2:
            shown.append(d)
    return shown[:SHOWN]


def _naming(distinct: list[Distinction]) -> list[tuple[str, str]]:
    """(name, qualifier) of the distinctions that can name a persona, most distinctive first,
    each of a family not named before it."""
    out, families = [], set()
    for d in distinct:
        high = d.z > 0
        block, _, value = d.column.name.partition("=")
        naming: tuple[str, str] | None = None
        if d.column.name in NAMES:
            naming = NAMES[d.column.name][0 if high else 1]
        elif high and block == "device":
            device = _DEVICES.get(value, value)
            naming = (f"{device} users" if value in _DEVICES else f"{value.capitalize()} shoppers", f"on {device}")
        elif high and block == "category":
            naming = (f"{value} fans", f"into {value}")
        if naming is not None and _family(d.column) not in families:
            out.append(naming)
            families.add(_family(d.column))
    return out


def _unique(namings: list[list[tuple[str, str]]]) -> list[str]:
    """The first naming plus the next qualifier; more qualifiers, then a number, while names clash."""
    def name(parts: list[tuple[str, str]], qualifiers: int) -> str:
        if not parts:
            return "Typical customers"
        quals = [q for _, q in parts[1:1 + qualifiers]]
        return ", ".join([f"{parts[0][0]} {quals[0]}" if quals else parts[0][0], *quals[1:]])

    names = [name(parts, 1) for parts in namings]
    for more in (2, 3):
        clashing = {n for n in names if names.count(n) > 1}
        names = [name(parts, more) if n in clashing else n for n, parts in zip(names, namings, strict=True)]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if names.count(n) == 1 else f"{n} ({seen[n]})")
    return out


def _fmt(column: Column, value: float) -> str:
    if column.kind in ("share", "ratio"):
        return f"{value:.0%}"
    if column.name == "session_minutes":
        return f"{value:.1f} min"
    if column.name in ("revenue", "avg_order_value"):
        return f"{value:,.2f}"
    return f"{value:,.1f}"

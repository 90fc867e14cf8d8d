"""Every predictive model's life in one place: train a version, score with the active one, and
the scheduled refresh that does both when due. Kinds: `clv` (`lifetime.py`), `propensity` and
`churn` (`classifiers.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from persona.errors import NotEnoughData, RequestError
from persona.log.events import now_micros
from persona.predict.features import Events, read_events
from persona.predict.registry import ModelRegistry, ModelVersion

if TYPE_CHECKING:
    from persona.engine import Engine

KINDS = ("clv", "propensity", "churn")
PROPENSITY_DAYS = 30  # the trait says so: purchase_propensity_30d


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise RequestError(f"no model {kind!r}; known: {', '.join(KINDS)}", field="kind")
    return kind


def train(engine: Engine, kind: str, now: int | None = None, events: Events | None = None) -> ModelVersion:
    """Train, register and activate a new version. NotEnoughData says why it cannot. `events`: the
    log read up to `now`, shared by the classifiers of one refresh."""
    check_kind(kind)
    if kind == "clv":
        from persona.predict.lifetime import train_clv

        return train_clv(engine.state, engine.models, now)
    from persona.predict.classifiers import train_classifier

    config = engine.config
    days = PROPENSITY_DAYS if kind == "propensity" else config.churn_days
    return train_classifier(engine.log, engine.state, engine.models, kind, days, now, churn_on=config.churn_on,
                            events=events)


def score(engine: Engine, version: ModelVersion, now: int | None = None, events: Events | None = None) -> str:
    """Score every customer with `version`; the line to log."""
    if version.kind == "clv":
        from persona.predict.lifetime import score_clv

        return score_clv(engine.state, engine.model_traits, version, now, registry=engine.models).summary()
    from persona.predict.classifiers import score_classifier

    return score_classifier(engine.log, engine.state, engine.model_traits, engine.models, version, now,
                            events=events).summary()


def refresh(engine: Engine, now: int | None = None) -> str:
    """What the scheduled `models` job does, for each kind: train a new version when none is active,
    or when the active one is the newest and older than `models_retrain` or flagged by its last
    drift measurement (0: never by itself; an older version activated by hand stays pinned); then
    score with the active version."""
    at = now_micros() if now is None else now
    log_read = _LogRead(engine, at)
    lines = []
    for kind in KINDS:
        try:
            lines.append(f"{kind}: {_refresh_one(engine, kind, at, log_read)}")
        except NotEnoughData as exc:
            lines.append(f"{kind}: skipped: {exc.message}")
    return "; ".join(lines)


class _LogRead:
    """The log read once, on first need, for every classifier trained or scored in a refresh."""

    def __init__(self, engine: Engine, at: int) -> None:
        self.engine, self.at = engine, at
        self._events: Events | None = None

    def __call__(self, kind: str) -> Events | None:
        if kind == "clv":
            return None  # lifetime value reads profiles only
        if self._events is None:
            self._events = read_events(self.engine.log, self.engine.state, self.at)
        return self._events


def _refresh_one(engine: Engine, kind: str, at: int, log_read: _LogRead) -> str:
    registry, retrain_after = engine.models, engine.config.models_retrain
    active, newest = registry.active(kind), next(iter(registry.versions(kind)), None)
    stale = active is not None and retrain_after > 0 and newest is not None and newest.id == active.id and (
        at / 1e6 - active.created_at >= retrain_after or _drifted(registry, active))
    trained = ""
    if active is None or stale:
        try:
            active = train(engine, kind, at, log_read(kind))
            trained = f"trained {active.label}; "
        except NotEnoughData as exc:
            if active is None:
                raise
            trained = f"not retrained ({exc.message}); "  # the version in use goes on scoring
    return trained + score(engine, active, at, log_read(kind))


def _drifted(registry: ModelRegistry, version: ModelVersion) -> bool:
    last = registry.drift(version.id)
    return bool(last and last[0]["flagged"])

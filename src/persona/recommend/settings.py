"""How the recommendation models train: the `recommendations:` section of the config file.

Kept apart from the models (no numpy here), so reading the configuration stays cheap.
"""

from __future__ import annotations

import msgspec


class InteractionWeights(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How much each kind of interaction says about a user's interest, and how fast it fades."""

    view: float = 1.0
    click: float = 1.0
    add: float = 3.0
    purchase: float = 5.0
    per_star: float = 1.0
    neutral_rating: float = 3.0
    half_life_days: float = 30.0

    def __post_init__(self) -> None:
        if self.half_life_days <= 0:
            raise ValueError("half_life_days must be positive")
        if min(self.view, self.click, self.add, self.purchase, self.per_star) < 0:
            raise ValueError("the weights of view, click, add, purchase and per_star must not be negative")

    def of_kind(self, kind: int) -> float:
        return (self.view, self.click, self.add, self.purchase, self.per_star)[kind]


class TrainingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    weights: InteractionWeights = msgspec.field(default_factory=InteractionWeights)
    validation_days: float = 7.0  # the end of the training period that tunes hyperparameters and the blend
    tune: bool = True             # tune the models' hyperparameters (the blend's weights are always learned)

    def __post_init__(self) -> None:
        if self.validation_days < 0:
            raise ValueError("validation_days must not be negative (0: no validation, default weights)")

"""Customer lifetime value: how many more purchases a customer will make, whether they are still
a customer at all, and what they will spend.

- **BG/NBD** (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way"): while alive a
  customer buys as a Poisson process whose rate varies across customers as a gamma(r, alpha); after
  each purchase they may drop out for good, with a probability that varies as a beta(a, b). Fit
  on each customer's repeat purchases `x`, the time of the last one `t_x` and the time observed
  `T` (time since the first purchase, in any unit: the parameters are in that unit).
- **Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV"; Hardie's 2013 note): the average
  value `m` of a customer's `x` repeat purchases, spend varying around a customer's own mean as
  a gamma(p, nu) and those means across customers as a gamma(q, gamma); independent of the purchase
  counts.

The likelihoods are implemented with scipy (the maintained libraries for these models pull in a
probabilistic-programming stack); parameters are fitted on their logarithms by L-BFGS. The test
suite reproduces the published CDNOW estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from persona.errors import NotEnoughData

ArrayLike = np.ndarray | float | int


def _arrays(*values: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in values]


@dataclass(frozen=True)
class BGNBD:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    customers: int = 0

    @classmethod
    def fit(cls, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BGNBD:
        x, t_x, T = _arrays(x, t_x, T)
        _check(len(x) >= 20 and np.any(x > 0), "BG/NBD needs at least 20 customers, some with repeat purchases")
        if np.any((x < 0) | (t_x < 0) | (t_x > T)):
            raise ValueError("every customer needs 0 <= t_x <= T and x >= 0")

        def negative(log_params: np.ndarray) -> float:
            return -float(np.sum(_bgnbd_log_likelihood(*np.exp(log_params), x, t_x, T)))

        found = _minimize(negative, np.log([1.0, max(float(T.mean()), 1e-3), 1.0, 1.0]))
        r, alpha, a, b = np.exp(found.x)
        return cls(float(r), float(alpha), float(a), float(b), -float(found.fun), len(x))

    def expected(self, t: ArrayLike) -> np.ndarray:
        """E[X(t)]: repeat purchases a new customer makes in their first `t`."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        (t,) = _arrays(t)
        hyp = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """P(still a customer | x, t_x, T); 1 for a customer with no repeat purchase yet."""
        x, t_x, T = _arrays(x, t_x, T)
        odds = np.where(x > 0, self._dropout_odds(x, t_x, T), 0.0)
        return 1.0 / (1.0 + odds)

    def conditional_expected(self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
                             ) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: purchases in the next `t` of a customer with that history."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        t, x, t_x, T = _arrays(t, x, t_x, T)
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        rate = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
        return rate * self.p_alive(x, t_x, T)

    def _dropout_odds(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        safe = np.maximum(x, 1.0)  # the odds only exist for x > 0; keep the other entries finite
        return a / (b + safe - 1) * ((alpha + T) / (alpha + t_x)) ** (r + safe)


def _bgnbd_log_likelihood(r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray,
                          T: np.ndarray) -> np.ndarray:
    """ln L per customer (Fader, Hardie & Lee 2005, eq. 6)."""
    ln_a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    ln_a2 = special.betaln(a, b + x) - special.betaln(a, b)
    ln_a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        ln_a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
                         -np.inf)
    return ln_a1 + ln_a2 + np.logaddexp(ln_a3, ln_a4)


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    customers: int = 0

    @classmethod
    def fit(cls, x: ArrayLike, m: ArrayLike) -> GammaGamma:
        """Fitted on the customers with repeat purchases (`x` > 0) and their average value `m` > 0."""
        x, m = _arrays(x, m)
        keep = (x > 0) & (m > 0)
        x, m = x[keep], m[keep]
        _check(len(x) >= 20, "Gamma-Gamma needs at least 20 customers with repeat purchases and a positive spend")

        def negative(log_params: np.ndarray) -> float:
            p, q, gamma = np.exp(log_params)
            return -float(np.sum(_gg_log_likelihood(p, q, gamma, x, m)))

        found = _minimize(negative, np.log([1.0, 2.0, max(float(m.mean()), 1e-3)]))
        p, q, gamma = np.exp(found.x)
        return cls(float(p), float(q), float(gamma), -float(found.fun), len(x))

    @property
    def mean_spend(self) -> float:
        """The population's expected average transaction value (a customer with no history)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("nan")

    def expected_spend(self, x: ArrayLike, m: ArrayLike) -> np.ndarray:
        """E[M | x, m]: a customer's expected average transaction value, their own average shrunk
        toward the population's, the less so the more purchases it rests on."""
        x, m = _arrays(x, m)
        x = np.where(m > 0, x, 0.0)
        return (self.gamma + m * x) * self.p / (self.p * x + self.q - 1)


def _gg_log_likelihood(p: float, q: float, gamma: float, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(gamma)
            + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(gamma + x * m))


def lifetime_value(bgnbd: BGNBD, spend: GammaGamma, x: ArrayLike, t_x: ArrayLike, T: ArrayLike,
                   m: ArrayLike, horizon: float, discount_per_period: float = 0.0, periods: int = 12
                   ) -> np.ndarray:
    """Expected value of the purchases in the next `horizon`, in `periods` steps, each discounted by
    `discount_per_period` (0.01 a month: ~12.7% a year): expected purchases per step x expected spend."""
    x, t_x, T, m = _arrays(x, t_x, T, m)
    value = spend.expected_spend(x, m)
    total = np.zeros_like(x)
    step = horizon / periods
    before = bgnbd.conditional_expected(0.0, x, t_x, T)
    for i in range(1, periods + 1):
        upto = bgnbd.conditional_expected(step * i, x, t_x, T)
        total += (upto - before) * value / (1 + discount_per_period) ** i
        before = upto
    return total


def _minimize(negative: object, start: np.ndarray) -> optimize.OptimizeResult:
    # Bounded in log space: on small or odd data (a shop a few weeks old) the optimum can run off
    # toward 0 or infinity, where exp overflows; e^20 either side of the start is far beyond any fit.
    bounds = [(s - 20.0, s + 20.0) for s in start]
    found = optimize.minimize(negative, start, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    if not np.isfinite(found.fun):
        raise NotEnoughData("the model could not be fitted on this data (the likelihood is not finite)")
    return found


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise NotEnoughData(message)

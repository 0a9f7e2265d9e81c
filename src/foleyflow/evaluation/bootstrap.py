"""Percentile bootstrap 95% confidence intervals, one helper for every reported figure.

Paired statistics (KL, CLAP score, per-edit reference metrics) resample item indices shared
by all arrays, so a pair stays a pair; set statistics (FD, FAD, IS) resample each set on its
own. The point value is always the statistic of the full data, never a bootstrap mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from foleyflow.errors import InputError

DEFAULT_RESAMPLES = 200
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci95_low": self.low, "ci95_high": self.high}

    def format(self, digits: int = 3) -> str:
        def show(number: float) -> str:
            return f"{round(number, digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0

        return f"{show(self.value)} [{show(self.low)}, {show(self.high)}]"


def bootstrap_ci(
    statistic: Callable[..., float],
    samples: Sequence[np.ndarray],
    paired: bool,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """statistic(*samples) with a percentile bootstrap interval over ``resamples`` draws.

    ``resamples=0`` returns the point value with a degenerate interval (value, value).
    """
    samples = [np.asarray(sample) for sample in samples]
    if paired and len({len(sample) for sample in samples}) != 1:
        raise InputError("paired bootstrap needs arrays of equal length: " + ", ".join(str(len(s)) for s in samples))
    value = float(statistic(*samples))
    if resamples <= 0:
        return Estimate(value, value, value)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for i in range(resamples):
        if paired:
            index = rng.integers(0, len(samples[0]), len(samples[0]))
            draws[i] = statistic(*(sample[index] for sample in samples))
        else:
            draws[i] = statistic(*(sample[rng.integers(0, len(sample), len(sample))] for sample in samples))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return Estimate(value, float(low), float(high))


def mean_ci(values: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Estimate:
    """The mean of per-item values (per-pair KL, cosines, per-edit L1, times) with its interval."""
    return bootstrap_ci(np.mean, [np.asarray(values, dtype=np.float64)], paired=True, resamples=resamples, seed=seed)

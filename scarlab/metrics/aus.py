"""AUS, the Adaptive Unlearning Score from DUCK (used by the SCAR paper), with optional error propagation.

All accuracies are fractions in [0, 1]. AUS can exceed 1 (a model better than the original on test).
Every function accepts floats or ``uncertainties`` ufloats; the result has the type of the inputs.
"""
from __future__ import annotations

import warnings

import numpy as np
from uncertainties import ufloat

from ..errors import choose
from .accuracy import SCENARIOS


def _abs(x):
    # abs()/umath.fabs() on ufloats are deprecated in uncertainties 3.2; flipping the sign is the same
    # first-order map (derivative +1 at exactly 0, as uncertainties itself used).
    return -x if getattr(x, "nominal_value", x) < 0 else x


def aus_cr(a_or, a_t, a_f):
    """Class removal: (1 − (a_or − a_t)) / (1 + |a_f|); a_t = retain-test acc, a_f = forget-test acc."""
    return (1 - (a_or - a_t)) / (1 + _abs(a_f))


def aus_hr(a_or, a_t, a_f):
    """Homogeneous removal: (1 − (a_or − a_t)) / (1 + |a_f − a_t|); a_t = test acc, a_f = forget-train acc."""
    return (1 - (a_or - a_t)) / (1 + _abs(a_f - a_t))


def aus_from_metrics(metrics: dict, a_or: float, scenario: str) -> float:
    """AUS from a ``split_accuracies`` dict. CR uses acc/retain_test, acc/forget_test; HR acc/test, acc/forget_train."""
    choose("scenario", scenario, SCENARIOS)
    if scenario == "CR":
        return aus_cr(a_or, metrics["acc/retain_test"], metrics["acc/forget_test"])
    return aus_hr(a_or, metrics["acc/test"], metrics["acc/forget_train"])


def mean_std(values):
    """ufloat(mean, sample std) of a scalar or [n] values; ddof=1 for n > 1, std 0 for a single value."""
    v = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    with warnings.catch_warnings():
        # uncertainties warns on every std 0 ufloat; a single run (e.g. one original model) is exactly that
        warnings.filterwarnings("ignore", message="Using UFloat objects with std_dev==0")
        return ufloat(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0)


def aus_with_uncertainty(a_or_values, a_t_values, a_f_values, scenario: str):
    """AUS of the means ± first-order propagated error, over seeds/classes (each argument: scalar or [n]).

    Each of a_or, a_t, a_f becomes mean ± sample std (``mean_std``) and ``uncertainties`` propagates them
    linearly. The three are treated as independent, although a_t and a_f of the same runs are usually
    correlated; this is the paper's "mean ± std" convention, not a confidence interval.
    """
    choose("scenario", scenario, SCENARIOS)
    fn = aus_cr if scenario == "CR" else aus_hr
    return fn(mean_std(a_or_values), mean_std(a_t_values), mean_std(a_f_values))

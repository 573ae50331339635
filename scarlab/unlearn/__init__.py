"""Unlearning methods: a registry (``METHODS``) of functions sharing one interface (see ``base``).

One file per method family; importing this package registers them all.
"""
from .base import METHODS, Context, MethodSpec, Params, StatsRequest, register_method  # noqa: F401
from . import scar  # noqa: F401  (registers scar, scar_self)
from . import finetune, negative_gradient, random_labels, duck, scrub, bad_teacher, ssd, salun  # noqa: F401  (baselines)

__all__ = ["METHODS", "Context", "MethodSpec", "Params", "StatsRequest", "register_method"]

"""Guards that keep the online models finite: a feature vector with inf, NaN or an absurd
magnitude is neither scored nor learned, and a model holding a non-finite number is never
checkpointed or restored.

Why: one ``1e308`` feature overflows River's ``StandardScaler`` (its running variance squares
it), the logistic regression then predicts NaN for every session, and scikit-learn's metrics
raise on the NaN scores. The edge refuses such values too (per-field bounds); these guards hold
on their own, for any value that reaches a model another way.

>>> usable({"step": 2.0, "cart_value": 4.4})
True
>>> usable({"step": 1e308}), usable({"step": float("nan")}), usable({"x": None})
(False, False, False)
>>> finite({"w": [1.0, 2.0]}), finite({"w": [1.0, float("inf")]})
(True, False)
"""

from __future__ import annotations

import math
import types
from collections import deque
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_AMOUNT", "MAX_FEATURE", "finite", "finite_amount", "usable"]

#: Largest feature magnitude a model takes. The models' features are flags, small counts and
#: ``log1p`` of amounts and durations (under 50 for anything real); 1e9 leaves room for any
#: honest raw count while its square (the scaler's variance) stays far from overflow.
MAX_FEATURE = 1e9
#: Largest money amount (one order, one unit's revenue) the models add up: no real order is
#: a trillion in any currency, and squares of it (revenue variance) stay finite.
MAX_AMOUNT = 1e12


def usable(x: Mapping[str, Any]) -> bool:
    """Whether every feature of ``x`` is a finite number within ``MAX_FEATURE``. Two passes
    in C (``sum`` carries NaN and inf through; ``max`` of the magnitudes finds the largest),
    about a microsecond for a model's 20 features."""
    values = x.values()
    if not values:
        return True
    try:
        total = sum(values)
        top = max(map(abs, values))
    except TypeError:  # not a number (a stored snapshot tampered with)
        return False
    return total == total and top <= MAX_FEATURE


def finite_amount(value: Any) -> bool:
    """Whether ``value`` is a number, finite, and within ``MAX_AMOUNT`` either way."""
    try:
        return bool(abs(value) <= MAX_AMOUNT)  # False for NaN and inf
    except TypeError:
        return False


_LEAVES = (int, str, bytes, bool, type(None), type, types.FunctionType,
           types.BuiltinFunctionType, types.MethodType, types.ModuleType)


def finite(obj: Any) -> bool:
    """Whether no float anywhere in ``obj`` (a River model: its dicts, lists, attributes,
    River's ``VectorDict`` weights, numpy arrays) is NaN or infinite."""
    stack, seen = [obj], set()
    while stack:
        o = stack.pop()
        if isinstance(o, float):
            if not math.isfinite(o):
                return False
            continue
        if isinstance(o, _LEAVES) or id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, Mapping):
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset | deque):
            stack.extend(o)
        elif hasattr(o, "dtype") and hasattr(o, "shape"):  # numpy array or scalar
            import numpy as np

            if o.dtype.kind in "fc" and not bool(np.isfinite(o).all()):
                return False
        elif callable(getattr(o, "to_dict", None)) and not hasattr(o, "__dict__"):
            stack.extend(o.to_dict().values())  # River's VectorDict (Rust, no __dict__)
        elif hasattr(o, "__dict__"):
            stack.extend(vars(o).values())
        elif hasattr(o, "__slots__"):
            stack.extend(getattr(o, name, None) for name in o.__slots__)
    return True

"""Journey definitions from YAML (the I/O half of ``detectors.journey``).

The default file, ``streams/journeys.yaml``, is packaged with frictionwatch: a retail checkout
(cart, contact, shipping, payment, review, order) and a B2B journey (quote requested, quote
viewed, contract sent, contract signed, renewal). A file of your own has the same shape:
``journeys:`` a list of journeys, each validated by ``Journey.from_dict``.

>>> js = load_journeys()
>>> for name, j in js.items():
...     print(name, j.profile, j.step_names[:3])
retail_checkout retail ('cart', 'contact', 'shipping')
b2b_quote_to_renewal b2b ('quote_requested', 'quote_viewed', 'contract_sent')
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from detectors.journey import Journey, JourneyError

__all__ = ["DEFAULT_JOURNEYS", "JourneyError", "load_journeys", "parse_journeys"]

#: The packaged default journey file.
DEFAULT_JOURNEYS = "journeys.yaml"


def load_journeys(path: str | Path | None = None) -> dict[str, Journey]:
    """Journeys by name from a YAML file (None: the packaged default); raises ``JourneyError``
    (a ``ValueError``) naming the file, journey, step and field that is wrong."""
    if path is None:
        text = resources.files("streams").joinpath(DEFAULT_JOURNEYS).read_text("utf-8")
        where = f"streams/{DEFAULT_JOURNEYS}"
    else:
        text = Path(path).read_text("utf-8")
        where = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JourneyError(f"{where}: not valid YAML: {exc}") from None
    return parse_journeys(data, where)


def parse_journeys(data: Any, where: str = "journeys") -> dict[str, Journey]:
    """Journeys by name from the parsed document (``{"journeys": [...]}``)."""
    if not isinstance(data, dict) or not isinstance(data.get("journeys"), list):
        raise JourneyError(f"{where}: expected a mapping with a 'journeys' list")
    unknown = set(data) - {"journeys"}
    if unknown:
        raise JourneyError(f"{where}: unknown top-level keys {sorted(unknown)}")
    out: dict[str, Journey] = {}
    for i, item in enumerate(data["journeys"], 1):
        try:
            j = Journey.from_dict(item)
        except JourneyError as exc:
            raise JourneyError(f"{where}: journey {i}: {exc}") from None
        if j.name in out:
            raise JourneyError(f"{where}: journey name {j.name!r} used twice")
        out[j.name] = j
    if not out:
        raise JourneyError(f"{where}: no journeys")
    return out

"""The training schemes by name: what a model family's `scheme` names (models/family.py). Adding a scheme means
writing its module beside these and listing its `SCHEME` here."""

from __future__ import annotations

from ganforge.errors import ConfigError
from ganforge.training.schemes import aae, cycle, gan, paired, sr
from ganforge.training.schemes.scheme import Scheme

SCHEMES: dict[str, Scheme] = {scheme.name: scheme for scheme in (
    gan.SCHEME, gan.SELF_SUPERVISED, aae.SCHEME, paired.SCHEME, cycle.SCHEME, sr.SCHEME,
)}


def scheme_of(name: str) -> Scheme:
    if name not in SCHEMES:
        raise ConfigError(f"no training scheme is called {name!r}; the schemes are {', '.join(sorted(SCHEMES))}")
    return SCHEMES[name]

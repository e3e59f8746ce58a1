"""Profiles pick the scale of every notebook: ``smoke`` (tests), ``book`` (the site), ``full`` (GPU)."""

from __future__ import annotations

import os
from types import SimpleNamespace

PROFILES = ("smoke", "book", "full")
DEFAULT_PROFILE = "book"
PROFILE_VARIABLE = "ITEMCHEST_PROFILE"


class UnknownProfileError(ValueError):
    """Raised when ``ITEMCHEST_PROFILE`` (or an argument) names no known profile."""


def active_profile() -> str:
    """The profile named by ``ITEMCHEST_PROFILE``; ``book`` when it is unset or empty."""
    name = os.environ.get(PROFILE_VARIABLE, "").strip() or DEFAULT_PROFILE
    return check_profile(name)


def check_profile(name: str) -> str:
    if name not in PROFILES:
        raise UnknownProfileError(
            f"Unknown profile {name!r} (from {PROFILE_VARIABLE} or an argument). "
            f"Valid profiles: {', '.join(PROFILES)}. "
            f"For example: export {PROFILE_VARIABLE}=smoke"
        )
    return name


def pick_config(*, smoke: dict, book: dict, full: dict, profile: str | None = None) -> SimpleNamespace:
    """Return the configuration of the active profile as attributes (``config.steps``).

    All three profiles must set the same keys, so a notebook cannot silently depend on a value
    that only one profile defines.
    """
    configs = {"smoke": smoke, "book": book, "full": full}
    keys = {name: set(config) for name, config in configs.items()}
    if len({frozenset(k) for k in keys.values()}) != 1:
        every = set().union(*keys.values())
        missing = {name: sorted(every - k) for name, k in keys.items() if every - k}
        raise ValueError(f"Every profile must set the same keys; missing: {missing}")
    name = check_profile(profile) if profile is not None else active_profile()
    return SimpleNamespace(profile=name, **configs[name])

"""Profiles pick the scale of every notebook: ``smoke`` (tests), ``book`` (the site), ``full`` (GPU)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from .dry_run import dry_run_batch

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


class Config(SimpleNamespace):
    """A profile's settings as attributes (``config.steps``), with the quality gates apart (``config.gates.x``).

    ``hyperparameters`` is what identifies a training run (the profile and every setting, not the gates), so
    a page can tighten a gate without invalidating its checkpoints."""

    @property
    def hyperparameters(self) -> dict:
        return {key: value for key, value in vars(self).items() if key != "gates"}

    def _repr_markdown_(self) -> str:
        rows = [f"| `{key}` | {value!r} |" for key, value in self.hyperparameters.items()]
        rows += [f"| gate `{key}` | {value!r} |" for key, value in vars(getattr(self, "gates", Config())).items()]
        return "| setting | value |\n| --- | --- |\n" + "\n".join(rows)

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.hyperparameters.items())
        gates = ", ".join(f"{key}={value!r}" for key, value in vars(getattr(self, "gates", Config())).items())
        return f"Config({settings}; gates: {gates or 'none'})"


def _same_keys(configs: dict[str, dict], what: str) -> None:
    keys = {name: set(config) for name, config in configs.items()}
    if len({frozenset(k) for k in keys.values()}) != 1:
        every = set().union(*keys.values())
        missing = {name: sorted(every - k) for name, k in keys.items() if every - k}
        raise ValueError(f"Every profile must set the same {what}; missing: {missing}")


def pick_config(*, smoke: dict, book: dict, full: dict, gates: dict | None = None,
                profile: str | None = None) -> Config:
    """Return the configuration of the active profile as attributes (``config.steps``).

    All three profiles must set the same keys, so a notebook cannot silently depend on a value that only one
    profile defines. ``gates`` (``dict(smoke={...}, book={...}, full={...})``) holds the quality-gate
    thresholds, apart from the hyperparameters: they appear as ``config.gates.<name>``.
    """
    configs = {"smoke": smoke, "book": book, "full": full}
    _same_keys(configs, "keys")
    gates = gates or {name: {} for name in PROFILES}
    if set(gates) != set(PROFILES):
        raise ValueError(f"gates must give thresholds for each of {', '.join(PROFILES)}; got {sorted(gates)}")
    _same_keys(gates, "gate keys")
    clashes = sorted(set(smoke) & set(gates["smoke"]))
    if clashes or "profile" in smoke or "gates" in smoke:
        raise ValueError(f"names used both as a setting and a gate, or reserved: {clashes or ['profile/gates']}")
    name = check_profile(profile) if profile is not None else active_profile()
    config = Config(profile=name, **dry_run_batch(configs[name]))
    if any(gates.values()):
        config.gates = SimpleNamespace(**gates[name])
    return config

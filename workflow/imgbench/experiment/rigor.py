"""How hard a run measures: the ``rigor`` presets of the repeat keys, as pyperf's
``--fast`` and ``--rigorous``.

A preset sets ``repeats`` (fresh stores per point, the unit of every interval),
``inner_repeats`` and ``inner_budget_seconds`` (timed repetitions inside one job); a key the
user sets (in a config file or ``--config``) wins over the preset. Intervals are order
statistics over a point's stores (``results.stats``): 1 store gives no interval and no
verdict, 3 give min–max with 75 % coverage, 6 give min–max with 96.9 % (at least 95 %).
"""

from __future__ import annotations

FAST = "fast"
DEFAULT = "default"
RIGOROUS = "rigorous"

REPEAT_KEYS = ("repeats", "inner_repeats", "inner_budget_seconds")

PRESETS: dict[str, dict] = {
    # A first answer in minutes: one store per point, no interval claims.
    FAST: {"repeats": 1, "inner_repeats": 3, "inner_budget_seconds": 1},
    # 75 % intervals of the median over 3 stores.
    DEFAULT: {"repeats": 3, "inner_repeats": 5, "inner_budget_seconds": 3},
    # 95 % intervals (96.9 %: min–max of 6 stores), for a write-up.
    RIGOROUS: {"repeats": 6, "inner_repeats": 5, "inner_budget_seconds": 3},
}

CLAIMS = {
    FAST: "one store per point: no interval, no verdict",
    DEFAULT: "3 stores per point: 75 % intervals",
    RIGOROUS: "6 stores per point: 95 % intervals",
}


def apply(config: dict) -> dict:
    """Fill every repeat key the config leaves unset (absent or null) from its ``rigor``
    preset; return the config."""
    preset = PRESETS[config.get("rigor") or DEFAULT]
    for key in REPEAT_KEYS:
        if config.get(key) is None:
            config[key] = preset[key]
    return config


def describe(config: dict) -> str:
    """One sentence: the rigor, its stores per point and what its intervals claim, and
    any repeat key set apart from the preset."""
    rigor = config.get("rigor") or DEFAULT
    preset = PRESETS[rigor]
    changed = [f"{key} {config[key]}" for key in REPEAT_KEYS if config.get(key) != preset[key]]
    stores = int(config["repeats"])
    if stores == preset["repeats"]:
        claim = CLAIMS[rigor]
    else:
        claim = f"{stores} stores per point: {interval_claim(stores)}"
    line = f"rigor {rigor} ({claim})"
    if changed:
        line += f"; set apart from the preset: {', '.join(changed)}"
    return line


def interval_claim(stores: int) -> str:
    """What the intervals over ``stores`` independent stores per point are."""
    if stores < 2:
        return "no interval, no verdict"
    coverage = 1 - 2 * 0.5**stores  # min–max of n stores covers the median this often
    if stores >= 6:
        return "95 % intervals"
    return f"{100 * coverage:.0f} % intervals (min–max)"

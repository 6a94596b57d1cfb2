"""The recipes by name: each a stage table for the one runner (``runner.py``); ``plateveil models train --recipe``."""

from __future__ import annotations

from pathlib import Path

from model_training import recipe, recipe2, recipe3
from model_training.runner import TRAINED, Recipe

RECIPES: dict[str, Recipe] = {"3.0": recipe3.TABLE, "2.0": recipe2.TABLE, "1.10": recipe.TABLE}
# where each recipe's rows run by default (the folders the earlier sessions used)
_ROOTS = {"3.0": Path("runs/train3"), "2.0": Path("runs/train2"), "1.10": Path("runs/train")}


def recipe_names() -> list[str]:
    return list(RECIPES)


def stage_names() -> list[str]:
    """Every training row of every recipe (a stage name alone may belong to any of them: ``--recipe`` picks)."""
    return sorted({n for r in RECIPES.values() for n in r.names(TRAINED)})


def default_root(name: str) -> Path:
    return _ROOTS[name]

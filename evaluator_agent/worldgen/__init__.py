"""Deterministic generator of realistic, noisy incident worlds and their labels.

``generate(recipe) -> (snapshot dict, Label)``; ``build_labelset(name, recipes, root)`` writes a
label set and its snapshots; ``python -m evaluator_agent.worldgen build-smoke`` regenerates the
smoke set from ``environments/recipes/smoke.json`` and ``build-core`` the core set from
``environments/recipes/core.json`` (written by ``core_recipes.py``); ``calibrate <set> [--noise
off]`` runs the mock policies over a set (``calibrate.py``). See ``build.py`` for the pipeline:
topology -> baseline -> mechanism -> noise -> render (metrics, logs, traces) -> monitors -> label.
"""

from evaluator_agent.worldgen.build import (
    GenerationError,
    build_from_file,
    build_labelset,
    build_smoke,
    build_world,
    generate,
    generate_pair,
)
from evaluator_agent.worldgen.mechanisms import REGISTRY
from evaluator_agent.worldgen.recipe import Recipe, RecipeFile, load_recipes

MECHANISMS_IMPLEMENTED = tuple(sorted(REGISTRY))

__all__ = [
    "GenerationError",
    "MECHANISMS_IMPLEMENTED",
    "Recipe",
    "RecipeFile",
    "build_from_file",
    "build_labelset",
    "build_smoke",
    "build_world",
    "generate",
    "generate_pair",
    "load_recipes",
]

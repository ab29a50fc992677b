"""The pages of the web interface, one module each; :func:`page_routes` collects their routes.

- ``runs``: every run (filters, pass-rate sparklines per target);
- ``run``: one run (summary, breakdowns with intervals, histogram, the investigations table);
- ``investigation``: one trajectory as a timeline beside the ground truth and sub-scores;
- ``compare``: two runs side by side (verdict, interval, flips, per-segment deltas);
- ``labels``: label sets by taxonomy and difficulty, one label's history and world;
- ``review``: the label review queue (accept, edit, reject);
- ``difficulty``: the IRT map of labels and targets.
"""

from __future__ import annotations

import importlib
from typing import Any

MODULES = ("runs", "run", "investigation", "compare", "labels", "review", "difficulty")


def page_routes(ui: Any) -> list[Any]:
    routes: list[Any] = []
    for name in MODULES:
        try:
            mod = importlib.import_module(f"evaluator_agent.web.pages.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"evaluator_agent.web.pages.{name}":
                raise
            continue  # a page not built yet
        routes += mod.routes(ui)
    return routes

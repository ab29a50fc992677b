"""Failure mechanisms, registered by name (see ``base.Mechanism``)."""

from evaluator_agent.worldgen.mechanisms import app, data, dependency, infra, no_fault  # noqa: F401  (registration side effects)
from evaluator_agent.worldgen.mechanisms.base import REGISTRY, Mechanism, Plan, propagate

__all__ = ["REGISTRY", "Mechanism", "Plan", "propagate"]

"""Failure mechanisms, registered by name (see ``base.Mechanism``)."""

from . import app, data, dependency, extra, infra  # noqa: F401  (registration side effects)
from .base import REGISTRY, Mechanism, Plan, propagate

__all__ = ["REGISTRY", "Mechanism", "Plan", "propagate"]

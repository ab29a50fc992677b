"""The ``proctor`` command line.
"""

from evaluator_agent.cli.main import main

__all__ = ["main"]

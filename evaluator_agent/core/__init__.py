"""The vocabulary every other package speaks: records, the investigation protocol, labels, settings.

Imports nothing else of ``evaluator_agent``.
"""

"""Datadog: LLM Observability spans, custom metrics, events, and the dashboards and monitors as code.
"""

"""Stored runs and what is read from them: the store, statistics, comparison, IRT, reports,
merge of shards, disclosure. Never imports the engine.
"""

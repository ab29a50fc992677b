"""Evaluating a target: the request, the conversation with the target, the investigation loop,
scoring, and the run that drives them.
"""

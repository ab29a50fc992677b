"""Checks of label sets: schema, hashes, entities, key evidence, red herrings, leaks.
"""

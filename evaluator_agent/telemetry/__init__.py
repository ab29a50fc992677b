"""One incident world and the tools that read it: snapshot, index, query languages, tools, catalog.
"""

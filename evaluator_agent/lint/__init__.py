"""Checks of label sets: schema, hashes, entities, key evidence, red herrings, leaks.

``checks`` is the face (``lint_labelset`` and the set-level run), ``report`` the check ids and
the report, ``worlds`` the snapshot files and their lookups, ``label`` the checks of one label,
``words`` the mechanism spellings looked for; ``leaks`` is the set-level census and ``masking``
its templates of free text.
"""

"""The web interface (``proctor serve`` at ``/ui``, ``proctor ui --db FILE``): runs, one run, one
investigation's trajectory, comparisons, label sets, the review queue and the difficulty map.

``app`` builds the ASGI app and its page wrapper, ``session`` signs viewers in and holds the
security headers, ``render`` the templates' environment and shared formatting, ``pages/`` one
module per page, ``templates/`` and ``static/`` what the browser gets (no build step).
"""

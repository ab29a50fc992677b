"""Results databases for the web interface's tests: real runs of in-process reference agents
through the real orchestrator (``engine.orchestrator.execute``) into a real SQLite store.

``build_ui_db(path)`` writes, on the smoke label set: ``methodical`` twice (the second with
2 attempts), ``random_guess`` once, and one run of a target whose card name is hostile markup,
owned by another API key's principal (``OTHER_OWNER``) unless ``hostile_owner`` says otherwise.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from evaluator_agent.core.keys import principal_of
from evaluator_agent.core.labels import load_labelset
from evaluator_agent.engine.orchestrator import Prepared, execute, new_run_id
from evaluator_agent.engine.request import EvaluationRequest
from evaluator_agent.results.store import Store

HOSTILE = '<script>alert("pwn")</script><img src=x onerror=alert(1)>'
KEY, OTHER_KEY = "ui-test-key-1", "ui-test-key-2"
OWNER, OTHER_OWNER = principal_of(KEY), principal_of(OTHER_KEY)


def _target(policy: str, name: str | None = None) -> Any:
    from mock_agents.inprocess import ROSTER

    t = ROSTER.make_target(policy)
    if name is not None:
        t.info = t.info.model_copy(update={"name": name}) if hasattr(t.info, "model_copy") else type(t.info)(
            **{**t.info.__dict__, "name": name})
    return t


async def _run(store: Store, policy: str, *, attempts: int = 1, name: str | None = None, owner: str | None = None,
               labelset: str = "smoke") -> str:
    ls = load_labelset(labelset)
    req = EvaluationRequest(target=f"http://127.0.0.1:9/{policy}/.well-known/agent-card.json", labelset=labelset,
                            attempts=attempts)
    prep = Prepared(req, ls, ls.labels, _target(policy, name), new_run_id())
    out = await execute(prep, store, owner=owner)
    return str(out["run_id"])


#: databases already built in this process, by owner of the hostile run: later calls copy them
_BUILT: dict[str | None, tuple[Path, dict[str, str]]] = {}


def build_ui_db(path: str | Path, *, hostile_owner: str | None = OTHER_OWNER) -> dict[str, str]:
    """The runs, by role: ``good``, ``good2``, ``bad``, ``hostile``. Built once per process (the
    runs take seconds), then copied: every caller gets its own file with the same runs."""
    import shutil

    if hostile_owner in _BUILT and _BUILT[hostile_owner][0].is_file():
        src, runs = _BUILT[hostile_owner]
        shutil.copyfile(src, path)
        return dict(runs)
    import tempfile

    runs = _build(path, hostile_owner)
    template = Path(tempfile.mkdtemp(prefix="ui-db-")) / "template.db"
    shutil.copyfile(path, template)  # a pristine copy: the caller's file will be opened and indexed
    _BUILT[hostile_owner] = (template, dict(runs))
    return runs


def _build(path: str | Path, hostile_owner: str | None) -> dict[str, str]:
    store = Store(path)

    async def all_runs() -> dict[str, str]:
        return {
            "good": await _run(store, "methodical", owner=OWNER),
            "bad": await _run(store, "random_guess", owner=OWNER),
            "good2": await _run(store, "methodical", attempts=2),
            "hostile": await _run(store, "alert_blamer", name=HOSTILE, owner=hostile_owner),
        }

    try:
        return asyncio.run(all_runs())
    finally:
        store.close()

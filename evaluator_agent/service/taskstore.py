"""The A2A task store of ``proctor serve``: per-principal, and bounded.

a2a-sdk's in-memory store keeps every task forever, with its artifacts: each ``get_run`` of a
core run is a task carrying the whole result (~0.5 MB), so a client polling results grows the
process without bound. Results live in SQLite; the task store only needs the tasks a client may
still ask about. :class:`BoundedTaskStore` keeps every unfinished task and the most recent
``max_finished`` finished ones (completed, failed, canceled, rejected), evicting the oldest
finished task first; a task evicted is "not found" to ``GetTask`` and absent from
``ListTasks``, its result still readable with ``get_run``.

Tasks belong to the principal that created them (the API key's principal the guard sets, see
:mod:`evaluator_agent.service.guard`): the SDK's store already files tasks by owner, so another key
gets "not found" for them, lists none of them and cannot cancel them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from a2a.server.tasks import InMemoryTaskStore
from a2a.types import TaskState

__all__ = ["DEFAULT_MAX_FINISHED", "BoundedTaskStore"]

DEFAULT_MAX_FINISHED = 200
FINISHED = frozenset(
    (
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    )
)


class BoundedTaskStore(InMemoryTaskStore):
    def __init__(self, max_finished: int = DEFAULT_MAX_FINISHED, **kwargs: Any):
        if max_finished < 0:
            raise ValueError("max_finished must be >= 0")
        super().__init__(**kwargs)
        self.max_finished = max_finished
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._guard = threading.Lock()

    def __len__(self) -> int:
        with self._impl.lock:
            return sum(len(tasks) for tasks in self._impl.tasks.values())

    async def save(self, task: Any, context: Any) -> None:
        await super().save(task, context)
        key = (self._impl.owner_resolver(context), task.id)
        evict: list[tuple[str, str]] = []
        with self._guard:
            if task.status.state in FINISHED:
                self._finished.pop(key, None)
                self._finished[key] = None
                while len(self._finished) > self.max_finished:
                    evict.append(self._finished.popitem(last=False)[0])
            else:
                self._finished.pop(key, None)  # a task can be resumed (input-required)
        for owner, task_id in evict:
            self._forget(owner, task_id)

    async def delete(self, task_id: str, context: Any) -> None:
        await super().delete(task_id, context)
        with self._guard:
            self._finished.pop((self._impl.owner_resolver(context), task_id), None)

    def _forget(self, owner: str, task_id: str) -> None:
        with self._impl.lock:
            tasks = self._impl.tasks.get(owner)
            if tasks is not None:
                tasks.pop(task_id, None)
                if not tasks:
                    del self._impl.tasks[owner]

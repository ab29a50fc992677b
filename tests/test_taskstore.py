"""The serve task store is bounded and files tasks by principal (issue 11, items 7 and 8)."""

from __future__ import annotations

import pytest
from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.types import ListTasksRequest, Task, TaskState, TaskStatus

from evaluator_agent.service.taskstore import BoundedTaskStore


class _Key(User):
    def __init__(self, name: str):
        self._name = name

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self._name


def _ctx(name: str) -> ServerCallContext:
    return ServerCallContext(user=_Key(name))


def _task(i: int, state: int) -> Task:
    return Task(id=f"t{i}", context_id=f"c{i}", status=TaskStatus(state=state))


@pytest.mark.anyio
async def test_finished_tasks_are_evicted_oldest_first_and_running_ones_kept() -> None:
    store = BoundedTaskStore(max_finished=3)
    a = _ctx("key-a")
    await store.save(_task(0, TaskState.TASK_STATE_WORKING), a)  # still running: never evicted
    for i in range(1, 11):
        await store.save(_task(i, TaskState.TASK_STATE_COMPLETED), a)
    assert len(store) == 4
    assert await store.get("t0", a) is not None
    assert [await store.get(f"t{i}", a) is None for i in (1, 7, 8, 9, 10)] == [True, True, False, False, False]
    listed = await store.list(ListTasksRequest(), a)
    assert sorted(t.id for t in listed.tasks) == ["t0", "t10", "t8", "t9"]
    await store.save(_task(0, TaskState.TASK_STATE_FAILED), a)  # the running one ends
    assert len(store) == 3 and await store.get("t8", a) is None


@pytest.mark.anyio
async def test_tasks_belong_to_their_principal() -> None:
    store = BoundedTaskStore(max_finished=10)
    a, b = _ctx("key-a"), _ctx("key-b")
    await store.save(_task(1, TaskState.TASK_STATE_COMPLETED), a)
    assert await store.get("t1", b) is None
    assert not (await store.list(ListTasksRequest(), b)).tasks
    await store.delete("t1", b)  # another principal cannot remove it either
    assert await store.get("t1", a) is not None

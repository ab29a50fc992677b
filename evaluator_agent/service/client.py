"""A client for the proctor's own A2A endpoint: send an evaluation request, follow its
progress over the stream, return the ``result`` artifact's data."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx


class ProctorTaskFailed(RuntimeError):
    """The proctor ended the task as failed; the message is the proctor's."""


async def call_proctor(
    proctor_url: str,
    request: dict[str, Any],
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    http: httpx.AsyncClient | None = None,
    streaming: bool = True,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send one request (evaluate, list_labelsets, get_run) and return the final artifact's data."""
    from a2a.client import ClientConfig, ClientFactory
    from a2a.helpers import new_data_part, new_message, new_text_part
    from a2a.types import Role, SendMessageRequest, TaskState

    from evaluator_agent.core.protocol import data_object

    own = http is None
    http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), headers=headers or {})
    try:
        factory = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http))
        client = await factory.create_from_url(proctor_url.rstrip("/"))
        msg = new_message([new_data_part(request), new_text_part(json.dumps(request))], role=Role.ROLE_USER)
        artifacts: list[Any] = []
        final_state = None
        final_msg = ""
        async for ev in client.send_message(SendMessageRequest(message=msg)):
            if ev.HasField("status_update"):
                st = ev.status_update.status
                final_state = st.state
                if st.HasField("message"):
                    texts = [p.text for p in st.message.parts if p.HasField("text")]
                    final_msg = " ".join(texts)
                    progress = data_object(st.message.parts) if on_progress else None
                    if progress is not None:
                        on_progress(progress)
            elif ev.HasField("artifact_update"):
                artifacts.append(ev.artifact_update.artifact)
            elif ev.HasField("task"):
                final_state = ev.task.status.state
                artifacts.extend(ev.task.artifacts)
                if ev.task.status.HasField("message"):
                    final_msg = " ".join(p.text for p in ev.task.status.message.parts if p.HasField("text"))
        if final_state == TaskState.TASK_STATE_FAILED:
            raise ProctorTaskFailed(final_msg or "the proctor reported a failed task")
        for art in reversed(artifacts):
            result = data_object(art.parts)
            if result is not None:
                return normalise_numbers(result)
        raise ProctorTaskFailed(f"no result artifact (state {TaskState.Name(final_state) if final_state else 'unknown'})")
    finally:
        if own:
            await http.aclose()


def normalise_numbers(obj: Any) -> Any:
    """A2A DataParts carry numbers as doubles: turn whole floats back into ints for comparison."""
    if isinstance(obj, dict):
        return {k: normalise_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalise_numbers(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    return obj

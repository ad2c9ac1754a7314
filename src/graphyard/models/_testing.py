"""A scripted chat model for tests and demos: streams token by token and reports usage.

Ships inside the library (like pydantic-ai's ``TestModel``) so users can test their own
graphs the way graphyard tests its own. It never touches the network.

Example::

    >>> from graphyard.models import ScriptedChatModel
    >>> model = ScriptedChatModel(responses=["Hello there"])
    >>> model.invoke("hi").content
    'Hello there'
    >>> model.invoke("again").usage_metadata["output_tokens"]   # the script wraps around
    2
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, SkipValidation

__all__ = ["Response", "ScriptedChatModel"]

Response = str | AIMessage | Callable[[list[BaseMessage]], "str | AIMessage"]
"""One scripted answer: text, a full message (e.g. with ``tool_calls``), or a function of
the prompt that returns either."""

_TOKEN = re.compile(r"\s*\S+|\s+$")


class ScriptedChatModel(BaseChatModel):
    """Answers from a script, in order, wrapping around; records every prompt it receives."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responses: SkipValidation[Sequence[Response]] = ("ok",)
    """The answers, in order."""
    delay: float = 0.0
    """Seconds between streamed tokens (async streaming only)."""
    finish_reason: str = "stop"
    """Reported in ``response_metadata``; ``"length"`` simulates a truncated answer."""
    model_name: str = "scripted"
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    """Every prompt received, oldest first."""

    @property
    def _llm_type(self) -> str:
        return "graphyard-scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self  # the script decides which tools are called

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        response = self.responses[len(self.calls) % len(self.responses)]
        self.calls.append(list(messages))
        if callable(response):
            response = response(messages)
        message = AIMessage(content=response) if isinstance(response, str) else response
        usage = UsageMetadata(
            input_tokens=count_tokens_approximately(messages),
            output_tokens=max(len(_TOKEN.findall(str(message.content))), 1),
            total_tokens=0,
        )
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        return message.model_copy(
            update={
                "id": message.id or f"lc_run-{uuid.uuid4()}",
                "usage_metadata": message.usage_metadata or usage,
                "response_metadata": {
                    "finish_reason": self.finish_reason,
                    "model_name": self.model_name,
                },
            }
        )

    def _chunks(self, message: AIMessage) -> Iterator[AIMessageChunk]:
        tokens = _TOKEN.findall(str(message.content)) or [""]
        for token in tokens:
            yield AIMessageChunk(content=token, id=message.id)
        yield AIMessageChunk(
            content="",
            id=message.id,
            tool_call_chunks=[
                {"name": c["name"], "args": _json(c["args"]), "id": c["id"], "index": i}
                for i, c in enumerate(message.tool_calls)
            ],
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
            chunk_position="last",
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._next(messages)):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._next(messages)):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield ChatGenerationChunk(message=chunk)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)

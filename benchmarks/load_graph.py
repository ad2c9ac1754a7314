"""The graph ``benchmarks/server_load.py`` serves, identical on graphyard and ``langgraph dev``.

One node calls a chat model that streams ``LOAD_TOKENS`` tokens, one every
``LOAD_TOKEN_DELAY`` seconds (environment variables, defaults 20 and 0.02), then a last
empty chunk with ``usage_metadata``, like a real provider.

The model is defined here instead of using ``graphyard.testing.ScriptedChatModel`` because
the peer server runs in its own virtualenv without graphyard: this module may import only
``langchain_core`` and ``langgraph``, so both servers load the very same code. It must never
reach the network.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages

__all__ = ["PacedChatModel", "agent"]


class PacedChatModel(BaseChatModel):
    """Streams ``tokens`` tokens (``"tok1 "``, ``"tok2 "``...) at one per ``delay`` seconds.

    >>> model = PacedChatModel(tokens=3, delay=0.0)
    >>> model.invoke("hi").content
    'tok1 tok2 tok3 '
    """

    tokens: int = 20
    delay: float = 0.02

    @property
    def _llm_type(self) -> str:
        return "paced-scripted"

    def _pieces(self) -> list[str]:
        return [f"tok{i} " for i in range(1, self.tokens + 1)]

    def _usage(self, messages: list[BaseMessage]) -> dict[str, int]:
        prompt = sum(len(str(m.content).split()) for m in messages)
        return {
            "input_tokens": prompt,
            "output_tokens": self.tokens,
            "total_tokens": prompt + self.tokens,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = AIMessage(content="".join(self._pieces()), usage_metadata=self._usage(messages))  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError("the benchmark streams asynchronously only")

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        message_id = f"lc_run-{uuid.uuid4()}"
        for piece in self._pieces():
            await asyncio.sleep(self.delay)
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece, id=message_id))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=message_id,
                usage_metadata=self._usage(messages),  # type: ignore[arg-type]
                chunk_position="last",
            )
        )


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


MODEL = PacedChatModel(
    tokens=int(os.environ.get("LOAD_TOKENS", "20")),
    delay=float(os.environ.get("LOAD_TOKEN_DELAY", "0.02")),
)


async def respond(state: State) -> dict[str, Any]:
    """Answer the conversation with the paced model (streamed: the server asks for tokens)."""
    return {"messages": [await MODEL.ainvoke(state["messages"])]}


_builder = StateGraph(State)
_builder.add_node("respond", respond)
_builder.add_edge(START, "respond")
agent = _builder.compile()
"""Served as ``benchmarks.load_graph:agent`` (graphyard) and ``load_graph.py:agent`` (peer)."""

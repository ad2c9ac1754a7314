"""The server the browser tests drive: real graphyard, scripted models that call tools.

``python -m uvicorn --factory web_server:app_factory`` (with this directory on
``PYTHONPATH``) serves the reference agent with every tier played by one
:class:`ScriptedChatModel` that declares tool calling, so the agent binds its tools and the
model itself decides to call ``create_ticket`` (the approval flow). It answers:

- a message asking for a ticket: a ``create_ticket`` tool call (the run then waits for a
  human's approval);
- right after a tool result: a sentence quoting that result;
- a message containing ``markup``: text full of HTML, to prove the page shows it as text;
- anything else: a 30-token answer that echoes the question, streamed one token every
  ``SCRIPTED_DELAY`` seconds so a test can watch it grow.

Prices for the ``scripted:*`` tiers come from ``GRAPHYARD_PRICES`` (set by the tests), so
every answer has a non-zero cost. Nothing here reaches a real model or the network.
"""

from __future__ import annotations

import os
import re

from fastapi import FastAPI
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

__all__ = ["MARKUP", "answer_to", "app_factory"]

MARKUP = (
    "Here is some markup: <img src=x onerror=\"document.body.dataset.pwned='yes'\"> "
    "<b>not bold</b> <script>document.body.dataset.pwned='yes'</script> &amp; done."
)
_TICKET = re.compile(r"\bticket\b", re.I)


def answer_to(question: str) -> str:
    """The ordinary answer to ``question``: 30 tokens or so that echo it."""
    return (
        f'You asked: "{question}". Here is a careful answer, streamed one word at a time '
        "so you can watch it arrive, and it ends right here."
    )


def _respond(messages: list[BaseMessage]) -> str | AIMessage:
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return f"All done. {last.content}"
    human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
    question = str(human.content).split("\n\nFacts:")[0] if human else ""
    if _TICKET.search(question):
        return AIMessage(
            content="",
            tool_calls=[
                {
                    "name": "create_ticket",
                    "args": {
                        "subject": question[:60],
                        "body": question,
                        "priority": "high",
                    },
                    "id": f"call_{len(messages)}",
                    "type": "tool_call",
                }
            ],
        )
    if "markup" in question:
        return MARKUP
    return answer_to(question)


def app_factory() -> FastAPI:
    """The app uvicorn serves, configured by ``GRAPHYARD_*`` and ``SCRIPTED_DELAY``."""
    settings = Settings()
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    model = ScriptedChatModel(
        responses=[_respond],
        delay=float(os.environ.get("SCRIPTED_DELAY", "0")),
        profile={"tool_calling": True},
    )
    return create_app(settings.model_copy(update=tiers), models=dict.fromkeys(TIERS, model))

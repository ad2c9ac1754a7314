"""Settings: the one place graphyard reads its configuration.

Values come from, in order of precedence: arguments, ``GRAPHYARD_*`` environment variables
(nested with ``__``, e.g. ``GRAPHYARD_MID__MODEL``), a ``graphyard.toml`` file, then the
defaults below. Nothing else in graphyard reads ``os.environ``: every component receives
typed values from a :class:`Settings`.

Example::

    >>> from graphyard.config import Settings
    >>> Settings(checkpointer="sqlite:///tmp/demo.db").checkpointer
    'sqlite:///tmp/demo.db'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "Durability",
    "LocalModelConfig",
    "ModelPrice",
    "Settings",
    "TierConfig",
    "TierName",
    "config_reference",
]

TierName = Literal["cheap", "mid", "strong"]
"""The three model tiers, cheapest first."""

TIERS: tuple[TierName, ...] = ("cheap", "mid", "strong")

Durability = Literal["sync", "async", "exit"]
"""When LangGraph persists checkpoints: before each step (``sync``), in the background
(``async``, may lose the last step on a crash) or once at the end of a run (``exit``)."""

SqliteSynchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
"""SQLite's ``PRAGMA synchronous``: FULL survives power loss in WAL mode; NORMAL may lose the
last transactions on power loss (not on a process crash) and is several times faster."""

DEFAULT_CONFIG_FILE = Path("graphyard.toml")


class TierConfig(BaseModel):
    """One model tier."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    model: str
    """Provider string: ``local:smollm2``, ``anthropic:<model>``, ``openai:<model>``, ``ollama:<model>``."""
    base_url: str | None = None
    """Endpoint for ``openai:`` (any OpenAI-compatible server) and ``ollama:`` models."""
    max_tokens: int = 512
    """Completion budget per model call; also reserved out of the context window when trimming."""
    context_window: int | None = None
    """Override the model's context window (tokens); by default taken from the model's profile."""
    temperature: float | None = None
    """Sampling temperature; the provider's default when unset."""

    @field_validator("model")
    @classmethod
    def _has_provider(cls, value: str) -> str:
        provider, sep, name = value.partition(":")
        if not sep or not provider or not name:
            from graphyard.errors import ConfigError

            raise ConfigError(
                f"model {value!r} needs a provider prefix, e.g. 'local:smollm2', "
                "'anthropic:claude-haiku-4-5', 'ollama:qwen3:8b' or 'openai:gpt-4.1-mini'"
            )
        return value


class LocalModelConfig(BaseModel):
    """The bundled llama.cpp model, served in-process by xllamacpp."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    threads: int = Field(1, ge=1)
    """CPU threads for decoding; one is far steadier when other work shares the CPU."""
    context_window: int = Field(8192, ge=512)
    """Context size given to llama.cpp (SmolLM2 was trained on 8192)."""
    model_path: Path | None = None
    """A GGUF file to serve instead of the bundled SmolLM2-135M."""
    startup_timeout: float = 120.0
    """Seconds a request waits for the model server to come up before failing."""


class ModelPrice(BaseModel):
    """Dollars per million tokens, for models genai-prices does not know (or to override it)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    input: float = 0.0
    """Uncached input tokens."""
    output: float = 0.0
    """Output tokens."""
    cache_read: float | None = None
    """Cached input tokens read; defaults to ``input``."""
    cache_write: float | None = None
    """Input tokens written to the cache; defaults to ``input``."""


class Settings(BaseSettings):
    """Everything graphyard can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="GRAPHYARD_",
        env_nested_delimiter="__",
        toml_file=DEFAULT_CONFIG_FILE,
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=True,
    )

    checkpointer: str = "sqlite:///graphyard.db"
    """Where thread state lives: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``."""
    sqlite_synchronous: SqliteSynchronous = "FULL"
    """SQLite ``PRAGMA synchronous`` for the checkpoint database."""
    durability: Durability = "sync"
    """When checkpoints are written during a run."""

    graph: str | None = None
    """The graph to serve as ``module:attribute``; the reference support agent when unset."""
    host: str = "127.0.0.1"
    """Interface the server binds."""
    port: int = 8123
    """Port the server binds."""

    cheap: TierConfig = TierConfig(model="local:smollm2", max_tokens=256)
    """The cheapest tier; the bundled local model by default."""
    mid: TierConfig = TierConfig(model="anthropic:claude-haiku-4-5")
    """The middle tier."""
    strong: TierConfig = TierConfig(model="anthropic:claude-sonnet-4-5", max_tokens=1024)
    """The strongest tier."""
    local: LocalModelConfig = LocalModelConfig()
    """The bundled local model."""
    prices: dict[str, ModelPrice] = {}
    """Price overrides keyed by provider string, e.g. ``{"ollama:qwen3:8b": {"input": 0.05}}``."""

    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GRAPHYARD_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    """Credentials for ``anthropic:`` tiers."""
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GRAPHYARD_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    """Credentials for ``openai:`` tiers without a ``base_url``."""

    context_fraction: float = Field(0.8, gt=0, le=1)
    """Share of a model's context window a prompt may fill (the completion budget comes out of it)."""
    max_revisions: int = Field(2, ge=0)
    """How many times the critic may send an answer back before the run ends with it."""
    tool_calls_per_turn: int = Field(6, ge=0)
    """Tool calls the agent may make answering one message."""
    shop_db: Path = Path("graphyard-shop.db")
    """The reference agent's demo shop (orders, tickets), created on first use."""

    @model_validator(mode="before")
    @classmethod
    def _merge_partial_sections(cls, data: Any) -> Any:
        """``GRAPHYARD_CHEAP__MAX_TOKENS=48`` alone changes one field, not the whole tier."""
        if isinstance(data, dict):
            for name in ("cheap", "mid", "strong", "local"):
                given = data.get(name)
                if isinstance(given, dict):
                    default = cls.model_fields[name].default
                    data[name] = {**default.model_dump(exclude_unset=False), **given}
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: object) -> Settings:
        """Read settings, from ``config_file`` instead of ``./graphyard.toml`` if given."""
        from graphyard.errors import ConfigError

        if config_file is None:
            return cls(**overrides)
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist")

        class _FromFile(cls):  # type: ignore[valid-type,misc]
            model_config = SettingsConfigDict(**{**cls.model_config, "toml_file": config_file})

        return Settings.model_validate(_FromFile(**overrides).model_dump())

    def tier(self, name: TierName) -> TierConfig:
        """The configuration of one tier."""
        return {"cheap": self.cheap, "mid": self.mid, "strong": self.strong}[name]


def config_reference() -> str:
    """The configuration reference as a Markdown table (the README embeds it; a test keeps
    them equal)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]

    def default_text(value: Any) -> str:
        if value is None or value == {}:
            return ""
        return f"`{value}`"

    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, BaseModel):
            for sub, subfield in type(default).model_fields.items():
                rows.append(
                    f"| `GRAPHYARD_{name.upper()}__{sub.upper()}` | "
                    f"{default_text(getattr(default, sub))} | {subfield.description or ''} |"
                )
            continue
        aliases = field.validation_alias
        env = (
            " or ".join(f"`{a}`" for a in aliases.choices)  # type: ignore[union-attr]
            if aliases is not None
            else f"`GRAPHYARD_{name.upper()}`"
        )
        rows.append(f"| {env} | {default_text(default)} | {field.description or ''} |")
    return "\n".join(rows).replace("``", "`")

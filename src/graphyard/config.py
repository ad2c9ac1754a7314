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

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

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
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "CacheConfig",
    "ContextConfig",
    "Durability",
    "LocalModelConfig",
    "LogFormat",
    "MetricsAccess",
    "ModelPrice",
    "PostgresConfig",
    "RouterKind",
    "Settings",
    "TierConfig",
    "TierName",
    "config_reference",
    "parse_duration",
    "parse_router_targets",
]

TierName = Literal["cheap", "mid", "strong"]
"""The three model tiers, cheapest first."""

TIERS: tuple[TierName, ...] = ("cheap", "mid", "strong")

RouterKind = Literal["learned", "rules", "llm"]
"""How the reference agent picks a tier: ``learned`` (a trained classifier, no model call),
``rules`` (keywords and length) or ``llm`` (ask the cheap tier's model to label the request
SIMPLE / MODERATE / COMPLEX, the common recipe, kept for comparison)."""

DEFAULT_ROUTER_TARGETS: dict[TierName, float] = {"cheap": 0.7, "mid": 0.2, "strong": 0.1}

MetricsAccess = Literal["auth", "open", "off"]
"""Who may read ``/metrics``: ``auth`` follows the server's auth (any valid API key when auth
is on; open when it is off, which means loopback only), ``open`` needs no key even with auth
on (for a scraper on a private network), ``off`` serves no ``/metrics`` and records nothing."""

LogFormat = Literal["auto", "json", "text"]
"""``json`` (one object per line), ``text`` (``LEVEL logger: message``) or ``auto``: JSON
unless the log stream is a terminal."""

Durability = Literal["sync", "async", "exit"]
"""When LangGraph persists checkpoints: before each step (``sync``), in the background
(``async``, may lose the last step on a crash) or once at the end of a run (``exit``)."""

SqliteSynchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
"""SQLite's ``PRAGMA synchronous``: FULL survives power loss in WAL mode; NORMAL may lose the
last transactions on power loss (not on a process crash) and is several times faster."""

DEFAULT_CONFIG_FILE = Path("graphyard.toml")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """A duration written like ``90s``, ``15m``, ``12h``, ``7d`` or ``2w``.

    >>> parse_duration("7d"), parse_duration("1.5h")
    (datetime.timedelta(days=7), datetime.timedelta(seconds=5400))
    """
    match = _DURATION.match(text)
    if match is None:
        from graphyard.errors import ConfigError

        raise ConfigError(
            f"duration {text!r} is not understood: write a number and a unit, "
            "s, m, h, d or w, e.g. '30d' or '12h'"
        )
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])


class ContextConfig(BaseModel):
    """How each model call's prompt is fitted to the model's window (``graphyard.context``).

    Set graph-wide as ``context``; a tier's own ``context`` overrides only the fields it sets.
    """

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    fraction: float | None = Field(None, gt=0, le=1)
    """Share of the model's window a prompt may fill; ``context_fraction`` when unset."""
    refill: float = Field(0.6, gt=0, le=1)
    """When the prompt outgrows its budget, the window start jumps so it fills this share; the prefix then stays put for several turns (1.0 slides every turn)."""
    pins: bool = True
    """Keep ids, emails, account numbers, stated preferences and tool results in a block that survives trimming."""
    pin_tokens: int = Field(400, ge=0)
    """Most tokens the pinned-facts block may take; older tool results give way first."""
    summary: bool = False
    """Summarise what the window leaves out with the cheap tier (one model call each time the window start jumps)."""
    summary_tokens: int = Field(300, ge=16)
    """Most tokens of the running summary."""
    cache: bool = True
    """Mark the stable prompt prefix with cache breakpoints (Anthropic models)."""
    exact_count: bool = True
    """Check prompts near the budget with the provider's exact token counter where one exists (Anthropic: a count request)."""


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
    context: ContextConfig | None = None
    """This tier's overrides of ``context`` (only the fields given), e.g. ``GRAPHYARD_STRONG__CONTEXT__REFILL=0.8``."""
    proxy: str | None = None
    """Send this tier's requests through a proxy (``socks5://host:port`` or ``http://host:port``), e.g. Tailscale's userspace proxy; other tiers go direct."""

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

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        scheme, sep, rest = (value or "").partition("://")
        if value is not None and (
            not sep or not rest or scheme not in ("http", "https", "socks5", "socks5h")
        ):
            from graphyard.errors import ConfigError

            raise ConfigError(
                f"proxy {value!r} must be a URL like socks5://localhost:1055 or "
                "http://localhost:1056 (schemes: http, https, socks5, socks5h)"
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


class PostgresConfig(BaseModel):
    """The connection pool of a ``postgresql://`` checkpointer (psycopg_pool)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    min_size: int = Field(1, ge=0)
    """Connections the pool keeps open while idle."""
    max_size: int = Field(10, ge=1)
    """Most connections the pool opens; each running graph step holds one briefly."""
    timeout: float = Field(30.0, gt=0)
    """Seconds to wait for a free connection (and for the server at startup) before failing."""
    max_idle: float = Field(600.0, gt=0)
    """Seconds an idle connection above ``min_size`` stays open."""

    @model_validator(mode="after")
    def _sizes(self) -> PostgresConfig:
        if self.max_size < self.min_size:
            from graphyard.errors import ConfigError

            raise ConfigError(
                f"postgres.max_size ({self.max_size}) is below postgres.min_size "
                f"({self.min_size}); raise GRAPHYARD_POSTGRES__MAX_SIZE"
            )
        return self


class CacheConfig(BaseModel):
    """Node and answer caching (``graphyard.caching``): where entries live and how long."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    enabled: bool = True
    """Cache knowledge-base searches and answers to self-contained questions."""
    url: str | None = None
    """Cache backend; unset = beside the checkpointer (SQLite: a sibling ``.cache.db`` file; Postgres: the same database; DynamoDB: a ``<table>-cache`` table). Or ``memory``, ``none``."""
    kb_ttl: str = "1d"
    """How long a knowledge-base search result is kept."""
    answer_ttl: str = "1d"
    """How long an answer shared by all users (a help question) is kept."""
    user_answer_ttl: str = "10m"
    """How long an answer built on one user's data (an order) is kept, for that user only."""

    @field_validator("kb_ttl", "answer_ttl", "user_answer_ttl")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        parse_duration(value)  # raises ConfigError with the accepted forms
        return value

    def seconds(self, name: Literal["kb_ttl", "answer_ttl", "user_answer_ttl"]) -> int:
        """A TTL in whole seconds."""
        return max(1, int(parse_duration(getattr(self, name)).total_seconds()))


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
    """Where thread state lives: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``postgresql://user:pass@host/db``, ``dynamodb://table?region=us-east-1``."""
    sqlite_synchronous: SqliteSynchronous = "FULL"
    """SQLite ``PRAGMA synchronous`` for the checkpoint database."""
    durability: Durability = "sync"
    """When checkpoints are written during a run."""
    postgres: PostgresConfig = PostgresConfig()
    """Connection pool of a ``postgresql://`` checkpointer."""
    cache: CacheConfig = CacheConfig()
    """Node and answer caching."""
    thread_ttl: str | None = None
    """Delete threads idle longer than this (e.g. ``30d``); the server checks on a schedule. Never when unset."""
    thread_ttl_check_every: str = "1h"
    """How often the server looks for threads idle past ``thread_ttl``."""
    run_events_ttl: str | None = "1h"
    """A finished run's stored stream events (what a client resuming with ``Last-Event-ID`` reads) are deleted this long after it ended; kept as long as their thread when unset. Kept forever they were most of the database: ~16 KB per 20-token run against ~3 KB of checkpoints."""
    dynamodb_ttl: str | None = None
    """``dynamodb://`` only: a thread idle this long (e.g. ``30d``) expires by DynamoDB's own TTL (its state lives at least 90% of it); never when unset."""

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
    context: ContextConfig = ContextConfig()
    """Context-window management: chunked windows, pinned facts, summaries, cache breakpoints."""
    max_revisions: int = Field(2, ge=0)
    """How many times the critic may send an answer back before the run ends with it."""
    tool_calls_per_turn: int = Field(6, ge=0)
    """Tool calls the agent may make answering one message."""
    budget_run_usd: float | None = Field(None, ge=0)
    """Dollars one run may spend on model calls; past it the run stops with ``budget_exceeded`` (checked before each call and while tokens stream). Unlimited when unset."""
    budget_thread_usd: float | None = Field(None, ge=0)
    """Dollars one thread may spend over all its runs; the thread resumes once this is raised. Unlimited when unset."""
    budget_user_day_usd: float | None = Field(None, ge=0)
    """Dollars one user may spend per UTC day over all their threads. Unlimited when unset."""
    shop_db: Path = Path("graphyard-shop.db")
    """The reference agent's demo shop (orders, tickets), created on first use."""

    api_keys: dict[str, str] = {}
    """API keys mapped to user ids, e.g. ``{"sk-alice": "alice"}``; sent as ``x-api-key`` or a bearer token."""
    auth: str | None = None
    """A custom authenticator ``module:function`` (request headers in, user id or None out)."""
    max_body_bytes: int = Field(1_000_000, ge=1024)
    """Larger request bodies are refused with 413 before anything runs."""
    rate_limit_per_minute: int | None = Field(None, ge=1)
    """Requests per user per minute; beyond it 429 with ``Retry-After``. Off when unset."""
    run_lease_seconds: float = Field(15.0, gt=0)
    """A run whose server stops heartbeating for this long is marked ``error``."""

    metrics: MetricsAccess = "auth"
    """Prometheus ``/metrics``: ``auth`` (needs an API key when auth is on), ``open`` (no key even then) or ``off`` (not served, nothing recorded)."""
    log_format: LogFormat = "auto"
    """``graphyard serve`` logs as ``json`` (one object per line, with run, thread and user ids), ``text``, or ``auto``: text on a terminal, JSON otherwise."""
    log_content: bool = False
    """Put prompts and answers in the log lines of model calls (off: logs carry ids, counts and timings only)."""
    otel_sdk_disabled: bool = Field(False, validation_alias=AliasChoices("OTEL_SDK_DISABLED"))
    """OpenTelemetry's switch: ``true`` turns tracing off whatever else is set."""
    otel_traces_exporter: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_TRACES_EXPORTER")
    )
    """Span exporters, e.g. ``otlp`` or ``console``; tracing is off when neither this nor an OTLP endpoint is set."""
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    """Where OTLP spans go (read by the exporter itself); setting it turns tracing on."""
    otel_exporter_otlp_protocol: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"
        ),
    )
    """``http/protobuf`` (the default) or ``grpc`` (needs ``opentelemetry-exporter-otlp-proto-grpc``)."""

    router: RouterKind = "learned"
    """How the reference agent picks a tier per request: ``learned``, ``rules`` or ``llm``."""
    router_targets: Annotated[dict[TierName, float], NoDecode] = DEFAULT_ROUTER_TARGETS
    """Share of traffic per tier for the learned router, e.g. ``cheap:0.7,mid:0.2,strong:0.1``."""
    router_model: Path | None = None
    """A router trained with ``graphyard router train``; the one bundled with graphyard when unset."""

    @field_validator("router_targets", mode="before")
    @classmethod
    def _router_shares(cls, value: Any) -> dict[str, float]:
        return parse_router_targets(value)

    @model_validator(mode="before")
    @classmethod
    def _merge_partial_sections(cls, data: Any) -> Any:
        """``GRAPHYARD_CHEAP__MAX_TOKENS=48`` alone changes one field, not the whole tier."""
        if isinstance(data, dict):
            for name in ("cheap", "mid", "strong", "local", "postgres", "cache"):
                given = data.get(name)
                if isinstance(given, dict):
                    default = cls.model_fields[name].default
                    data[name] = {**default.model_dump(exclude_unset=False), **given}
        return data

    @field_validator("thread_ttl", "thread_ttl_check_every", "dynamodb_ttl", "run_events_ttl")
    @classmethod
    def _is_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # raises ConfigError with the accepted forms
        return value

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

    def tier_context(self, name: TierName) -> ContextConfig:
        """``context`` with the tier's own overrides applied (``fraction`` filled in).

        >>> Settings(strong={"model": "anthropic:claude-sonnet-4-5", "context": {"refill": 0.9}}).tier_context("strong").refill
        0.9
        """
        own = self.tier(name).context
        merged = self.context.model_copy(
            update=own.model_dump(exclude_unset=True) if own is not None else {}
        )
        if merged.fraction is None:
            merged = merged.model_copy(update={"fraction": self.context_fraction})
        return merged


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


def parse_router_targets(value: Any) -> dict[str, float]:
    """Shares of traffic per tier from ``"cheap:0.7,mid:0.2,strong:0.1"`` or a mapping.

    Tiers left out get 0; the shares must add up to 1.

    >>> parse_router_targets("cheap:0.8,strong:0.2")
    {'cheap': 0.8, 'mid': 0.0, 'strong': 0.2}
    """
    from graphyard.errors import ConfigError

    example = "e.g. GRAPHYARD_ROUTER_TARGETS=cheap:0.7,mid:0.2,strong:0.1"
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, share = part.partition(":")
            if not sep:
                raise ConfigError(
                    f"router targets {value!r}: {part!r} is not tier:share ({example})"
                )
            pairs[name.strip()] = share.strip()
        value = pairs
    if not isinstance(value, dict):
        raise ConfigError(f"router targets must be tier:share pairs ({example})")
    shares = dict.fromkeys(TIERS, 0.0)
    for name, share in value.items():
        if name not in shares:
            raise ConfigError(
                f"router targets: unknown tier {name!r}; use cheap, mid, strong ({example})"
            )
        try:
            shares[name] = float(share)
        except (TypeError, ValueError):
            raise ConfigError(
                f"router targets: share {share!r} for {name} is not a number ({example})"
            ) from None
        if not 0.0 <= shares[name] <= 1.0:
            raise ConfigError(
                f"router targets: share for {name} must be between 0 and 1 ({example})"
            )
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise ConfigError(f"router targets add up to {sum(shares.values()):g}, not 1 ({example})")
    return shares

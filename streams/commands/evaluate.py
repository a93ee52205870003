"""``frictionwatch evaluate FILE``: an online model judged progressively (each row predicted,
then learned, once) on a CSV or JSONL dataset, beside a scikit-learn batch baseline trained and
scored on a held-out split; ROC and PR curves saved as PNG."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from models.baseline import binary_baseline, text_baseline
from models.progressive import binary_report, multiclass_report, progressive
from models.purchase import SHOPPERS_CATEGORICAL, purchase_model, tabular_features
from models.triage import triage_model
from streams.commands.common import fail


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    else:
        with open(path, newline="") as f:
            yield from csv.DictReader(f)


def evaluate(
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or JSONL dataset.",
                                         exists=True, dir_okay=False)],
    model: Annotated[str, typer.Option(help="purchase (binary, tabular) or triage (text "
                                       "categories).")] = "purchase",
    label: Annotated[str, typer.Option(help="Column holding the label.")] = "Revenue",
    positive: Annotated[str, typer.Option(help="Label value of the positive class "
                                          "(purchase).")] = "TRUE",
    text: Annotated[str, typer.Option(help="Column holding the text (triage).")] = "text",
    categorical: Annotated[str, typer.Option(help="Comma-separated columns that are codes, "
                                             "one-hot even when numeric (purchase).")] =
        ",".join(SHOPPERS_CATEGORICAL),
    threshold: Annotated[float, typer.Option(help="Probability from which a row counts as "
                                             "positive, for F1.")] = 0.35,
    shuffle: Annotated[int | None, typer.Option(help="Shuffle the rows with this seed first "
                                                "(for files sorted by label).")] = None,
    limit: Annotated[int | None, typer.Option(help="Use the first N rows only.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Directory for roc.png and pr.png "
                                               "(purchase).")] = None,
) -> None:
    """Progressive (predict-then-learn) evaluation of an online model on a dataset, printed
    beside a batch baseline trained on 70% and scored on the held-out 30%."""
    rows = list(_rows(file))
    if shuffle is not None:
        random.Random(shuffle).shuffle(rows)
    if limit is not None:
        rows = rows[:limit]
    if not rows or label not in rows[0]:
        raise fail(f"{file}: no rows, or no column {label!r}")
    console = Console()
    if model == "purchase":
        cats = {c for c in categorical.split(",") if c}
        data = [(tabular_features(r, skip=(label,), categorical=cats), str(r[label]) == positive)
                for r in rows]
        online = binary_report(run := progressive(purchase_model(), data), threshold)
        batch = binary_baseline(data, threshold=threshold)
        t = _table(f"{file.name}: {int(online['n']):,} rows, {int(online['positives']):,} "
                   f"positive ({online['positives'] / online['n']:.1%})", batch["model"])
        for k in ("roc_auc", "pr_auc", "f1", "accuracy"):
            t.add_row(k, f"{online[k]:.3f}", f"{batch[k]:.3f}")
        t.add_row("log_loss", f"{online['log_loss']:.3f}", "")
        t.add_row("precision / recall", f"{online['precision']:.3f} / {online['recall']:.3f}",
                  "")
        console.print(t)
        if plots is not None:
            for path in _curves(plots, run.y_true, run.scores, batch["y_test"],
                                batch["p_test"]):
                console.print(f"saved {path}")
    elif model == "triage":
        pairs = [(str(r[text]), r[label]) for r in rows]
        online = multiclass_report(progressive(triage_model(), pairs))
        batch = text_baseline(pairs)
        t = _table(f"{file.name}: {int(online['n']):,} rows, "
                   f"{len({y for _, y in pairs}):,} categories", batch["model"])
        for k in ("accuracy", "macro_f1"):
            t.add_row(k, f"{online[k]:.3f}", f"{batch[k]:.3f}")
        console.print(t)
    else:
        raise fail(f"unknown model {model!r}: purchase or triage")


def _table(title: str, baseline: str) -> Table:
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("online, progressive (every row)", justify="right")
    t.add_column(f"batch {baseline} (30% held out)", justify="right")
    return t


def _curves(out: Path, y: list[Any], p: list[float], y_batch: list[Any],
            p_batch: list[float]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, display in (("roc", RocCurveDisplay), ("pr", PrecisionRecallDisplay)):
        fig, ax = plt.subplots(figsize=(5, 4.5))
        display.from_predictions(y, p, name="online (progressive)", ax=ax)
        display.from_predictions(y_batch, p_batch, name="batch (held out)", ax=ax)
        ax.set_title("ROC curve" if name == "roc" else "Precision-recall curve")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)

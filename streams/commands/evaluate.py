"""``frictionwatch evaluate FILE``: an online model judged progressively (each row predicted,
then learned, once) on a CSV or JSONL dataset, beside a scikit-learn batch baseline trained and
scored on a held-out split, or beside a train-then-test run of both models on the same rows;
repeated over seeds and row orders on request; ROC and PR curves saved as PNG."""

from __future__ import annotations

import csv
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from threadpoolctl import threadpool_limits

from models.baseline import binary_fit_score, text_fit_score
from models.churn import churn_model
from models.evaluation import holdout, id_columns, spread, train_then_test
from models.progressive import Progressive, binary_report, multiclass_report, progressive
from models.purchase import SHOPPERS_CATEGORICAL, purchase_model, tabular_features
from models.triage import triage_model
from streams.commands.common import fail

#: Binary models on tabular rows: name -> (factory of a fresh model from a seed, what the
#: seed drives in it, or None when it has no randomness).
BINARY: dict[str, tuple[Callable[[int], Any], str | None]] = {
    "purchase": (lambda seed: purchase_model(seed=seed), "online forest"),
    "churn": (lambda seed: churn_model(), None),  # logistic regression from zeros: no seed
}
MODELS = (*BINARY, "triage")
#: Test share of the batch baseline when no --split or --test is given.
HELD_OUT = 0.3
#: Label values and columns named in an error, at most (a wrong column could be an id).
LISTED = 20

BINARY_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss")
MULTICLASS_METRICS = ("accuracy", "macro_f1")


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    else:
        with open(path, newline="") as f:
            yield from csv.DictReader(f)


def _listed(items: Sequence[str]) -> str:
    more = f", ... ({len(items) - LISTED} more)" if len(items) > LISTED else ""
    return ", ".join(repr(i) for i in items[:LISTED]) + more


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows[:1000]:  # JSONL rows may differ; the first thousand name enough of them
        seen.update(dict.fromkeys(r))
    return list(seen)


def _need(path: Path, rows: Sequence[dict[str, Any]], column: str, option: str) -> None:
    if not rows:
        raise fail(f"{path}: no rows")
    columns = _columns(rows)
    if column not in columns:
        raise fail(f"{path}: no column {column!r} ({option}); its columns: {_listed(columns)}")


def _check_positive(path: Path, rows: Sequence[dict[str, Any]], label: str,
                    positive: str) -> None:
    counts = Counter(str(r.get(label)) for r in rows)
    hits = counts.get(positive, 0)
    if 0 < hits < len(rows):
        return
    values = [f"{v} ({n:,} rows)" for v, n in counts.most_common()]
    what = "no row has" if hits == 0 else "every row has"
    raise fail(f"{path}: {what} {label} == {positive!r} (--positive), so there is nothing to "
               f"tell apart; the values of {label!r}: {_listed(values)}")


def evaluate(
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or JSONL dataset.",
                                         exists=True, dir_okay=False)],
    model: Annotated[str, typer.Option(help="purchase (binary, tabular: an adaptive random "
                                       "forest), churn (binary, tabular: the churn model's "
                                       "logistic regression) or triage (text "
                                       "categories).")] = "purchase",
    label: Annotated[str, typer.Option(help="Column holding the label.")] = "Revenue",
    positive: Annotated[str, typer.Option(help="Label value of the positive class "
                                          "(purchase, churn).")] = "TRUE",
    text: Annotated[str, typer.Option(help="Column holding the text (triage).")] = "text",
    categorical: Annotated[str, typer.Option(help="Comma-separated columns that are codes, "
                                             "one-hot even when numeric (purchase, churn).")] =
        ",".join(SHOPPERS_CATEGORICAL),
    drop: Annotated[list[str] | None, typer.Option(
        metavar="COL",
        help="Column to leave out of the features (repeatable, or comma-separated).")] = None,
    keep_ids: Annotated[bool, typer.Option(
        "--keep-ids", help="Keep columns unique per row (not fractional numbers): by default "
        "they are ids, dropped and named in the output.")] = False,
    threshold: Annotated[float, typer.Option(help="Probability from which a row counts as "
                                             "positive, for F1, precision, recall and "
                                             "accuracy.")] = 0.35,
    seed: Annotated[int, typer.Option(help="Seed of all randomness: the online forest, the "
                                      "batch trees and the train/test split (printed).")] = 0,
    shuffle: Annotated[int | None, typer.Option(help="Shuffle the rows with this seed first "
                                                "(for files sorted by label).")] = None,
    limit: Annotated[int | None, typer.Option(help="Use the first N rows only.", min=1)] = None,
    split: Annotated[float | None, typer.Option(
        metavar="FRACTION",
        help="Also hold out this share of the rows (random, seeded, stratified), e.g. 0.3: "
        "both models trained on the other rows, scored on these.")] = None,
    test: Annotated[Path | None, typer.Option(
        metavar="TEST_FILE",
        help="Also train both models on all of FILE's rows and score them on TEST_FILE's "
        "rows (same columns).",
        exists=True, dir_okay=False)] = None,
    repeat: Annotated[int, typer.Option(
        metavar="N",
        help="Run N times (seeds SEED..SEED+N-1, rows shuffled with each) and print each "
        "figure's mean, sd, min and max.", min=1)] = 1,
    plots: Annotated[Path | None, typer.Option(help="Directory for roc.png and pr.png "
                                               "(purchase, churn; single runs).")] = None,
) -> None:
    """Progressive (predict-then-learn) evaluation of an online model on a dataset, beside a
    batch baseline.

    Which rows each figure covers: the online, progressive column scores every row, each
    predicted before the model learned it, in file order (--repeat: a new random order per
    run). The batch column is trained on a
    random 70% and scored on the held-out 30% only. With --split or --test, the progressive
    column is joined by both models trained on the same train rows (the online one in order,
    once) and scored on the same test rows (the online one without learning them)."""
    started = time.perf_counter()
    if model not in MODELS:
        raise fail(f"unknown model {model!r}: {', '.join(MODELS)}")
    if split is not None and test is not None:
        raise fail("--split and --test are two ways to choose test rows: give one")
    if split is not None and not 0.0 < split < 1.0:
        raise fail(f"--split {split}: the test share must be between 0 and 1")
    rows = list(_rows(file))
    _need(file, rows, label, "--label")
    if shuffle is not None:
        random.Random(shuffle).shuffle(rows)
    if limit is not None:
        rows = rows[:limit]
    test_rows = list(_rows(test)) if test is not None else None
    if test is not None and test_rows is not None:
        _need(test, test_rows, label, "--label")
    console = Console()
    dropped = [c.strip() for d in drop or () for c in d.split(",") if c.strip()]
    columns = _columns(rows)
    unknown = [c for c in dropped if c not in columns]
    if unknown:
        raise fail(f"{file}: no column {_listed(unknown)} (--drop); its columns: "
                   f"{_listed(columns)}")
    # One thread for the batch models: on this data their OpenMP threads gain little and,
    # on a busy machine, spin (the online shoppers baseline: 51 s against 3 s, 2 loaded cores).
    with threadpool_limits(limits=1):
        if model == "triage":
            _need(file, rows, text, "--text")
            if test is not None and test_rows is not None:
                _need(test, test_rows, text, "--text")
            _triage(console, file, rows, test_rows, label, text, seed, split, repeat)
        else:
            _check_positive(file, rows, label, positive)
            if test is not None and test_rows is not None:
                _check_positive(test, test_rows, label, positive)
            ids = [] if keep_ids else id_columns(rows, exclude={label, *dropped})
            for col in dropped:
                console.print(f"dropped {col!r} (--drop)", markup=False)
            for col in ids:
                console.print(f"dropped {col!r}: unique per row, an id (--keep-ids keeps it)",
                              markup=False)
            skip = {label, *dropped, *ids}
            cats = {c for c in categorical.split(",") if c}

            def encode(rs: Sequence[dict[str, Any]]) -> list[tuple[dict[str, float], bool]]:
                return [(tabular_features(r, skip=skip, categorical=cats), str(r.get(label)) ==
                         positive) for r in rs]

            _binary(console, file, model, encode(rows),
                    encode(test_rows) if test_rows is not None else None, threshold, seed, split,
                    repeat, plots)
    console.print(f"took {time.perf_counter() - started:.1f} s")


def _order(data: list[Any], seed: int, repeat: int) -> list[Any]:
    """The rows of one run: as given for a single run, shuffled with its seed when repeated."""
    if repeat == 1:
        return data
    data = list(data)
    random.Random(seed).shuffle(data)
    return data


def _binary(console: Console, file: Path, model: str,
            data: list[tuple[dict[str, float], bool]],
            test_data: list[tuple[dict[str, float], bool]] | None, threshold: float, seed: int,
            split: float | None, repeat: int, plots: Path | None) -> None:
    make, seeded = BINARY[model]
    runs: list[dict[str, dict[str, float]]] = []
    curves: list[tuple[str, list[Any], list[float]]] = []
    tt = split is not None or test_data is not None
    for k in range(repeat):
        s = seed + k
        rows = _order(data, s, repeat)
        run = progressive(make(s), rows)
        figures = {"progressive": binary_report(run, threshold)}
        if test_data is not None:
            train, held = rows, test_data
        else:
            i_train, i_test = holdout([y for _, y in rows], split or HELD_OUT, s)
            train, held = [rows[i] for i in i_train], [rows[i] for i in i_test]
        batch = binary_fit_score(train, held, threshold=threshold, seed=s)
        batch_run = Progressive(y_true=batch["y_test"], scores=batch["p_test"])
        figures["batch"] = binary_report(batch_run, threshold)
        curves = [("online (progressive)", run.y_true, run.scores)]
        if tt:
            online_tt = train_then_test(make(s), train, held)
            figures["online_tt"] = binary_report(online_tt, threshold)
            curves.append(("online (train, then test)", online_tt.y_true, online_tt.scores))
        curves.append(("batch (test rows)", batch_run.y_true, batch_run.scores))
        runs.append(figures)
    first = runs[0]
    n, pos = int(first["progressive"]["n"]), int(first["progressive"]["positives"])
    title = (f"{file.name}: {n:,} rows, {pos:,} positive ({pos / n:.1%}); model {model}; "
             + _seeds(seed, repeat, seeded))
    _print(console, title, runs, BINARY_METRICS, tt, test_data is not None, split,
           "HistGradientBoosting", repeat)
    if plots is not None and repeat == 1:
        for path in _curves(plots, curves):
            console.print(f"saved {path}")


def _triage(console: Console, file: Path, rows: list[dict[str, Any]],
            test_rows: list[dict[str, Any]] | None, label: str, text: str, seed: int,
            split: float | None, repeat: int) -> None:
    data = [(str(r[text]), r[label]) for r in rows]
    test_data = None if test_rows is None else [(str(r.get(text)), r.get(label))
                                                for r in test_rows]
    tt = split is not None or test_data is not None
    runs: list[dict[str, dict[str, float]]] = []
    for k in range(repeat):
        s = seed + k
        pairs = _order(data, s, repeat)
        figures = {"progressive": multiclass_report(progressive(triage_model(), pairs))}
        if test_data is not None:
            train, held = pairs, test_data
        else:
            i_train, i_test = holdout([y for _, y in pairs], split or HELD_OUT, s)
            train, held = [pairs[i] for i in i_train], [pairs[i] for i in i_test]
        figures["batch"] = text_fit_score(train, held)
        if tt:
            figures["online_tt"] = multiclass_report(train_then_test(triage_model(), train,
                                                                     held))
        runs.append(figures)
    title = (f"{file.name}: {len(data):,} rows, {len({y for _, y in data}):,} categories; "
             f"model triage; " + _seeds(seed, repeat, None))
    _print(console, title, runs, MULTICLASS_METRICS, tt, test_data is not None, split,
           "TF-IDF + LogisticRegression", repeat)


def _seeds(seed: int, repeat: int, seeded: str | None) -> str:
    what = ", ".join(w for w in (seeded, "batch model", "split") if w)
    if repeat == 1:
        return f"seed {seed} ({what})"
    return f"{repeat} runs, seeds {seed}..{seed + repeat - 1} ({what}, row order)"


def _print(console: Console, title: str, runs: list[dict[str, dict[str, float]]],
           metrics: Sequence[str], tt: bool, test_file: bool, split: float | None,
           batch_name: str, repeat: int) -> None:
    first = runs[0]
    n_all, n_test = int(first["progressive"]["n"]), int(first["batch"]["n"])
    n_train = n_all if test_file else n_all - n_test
    cols = ["progressive"] + (["online_tt"] if tt else []) + ["batch"]
    if tt:
        rows_of = f"the {n_test:,} test rows"
        heads = {"online_tt": f"online, train then test ({rows_of})",
                 "batch": f"batch {batch_name} ({rows_of})"}
    else:
        heads = {"batch": f"batch {batch_name} ({n_test:,} held-out rows, "
                          f"{HELD_OUT:.0%})"}
    heads["progressive"] = f"online, progressive (all {n_all:,} rows)"
    t = Table(title=escape(title))
    t.add_column("metric")
    for c in cols:
        t.add_column(heads[c], justify="right")
    if "positives" in first["progressive"]:  # binary
        t.add_row("rows scored / positive",
                  *(f"{int(first[c]['n']):,} / {int(first[c]['positives']):,}" for c in cols))
    else:
        t.add_row("rows scored", *(f"{int(first[c]['n']):,}" for c in cols))
    for m in metrics:
        if repeat == 1:
            t.add_row(m, *(f"{first[c][m]:.3f}" for c in cols))
        else:
            cells = []
            for c in cols:
                sp = spread(r[c][m] for r in runs)
                cells.append(f"{sp['mean']:.3f} ± {sp['sd']:.3f} "
                             f"[{sp['min']:.3f}, {sp['max']:.3f}]")
            t.add_row(m, *cells)
    console.print(t)
    order = "rows in a new random order per run" if repeat > 1 else "rows in file order"
    console.print(f"progressive: each of the {n_all:,} rows predicted by the online model "
                  f"before it learned it ({order}).")
    if not tt:
        console.print(f"batch: trained on a random {1 - HELD_OUT:.0%} ({n_train:,} rows) and "
                      f"scored on the other {n_test:,} rows only: not the progressive "
                      "column's rows. --split or --test scores both models on the same rows.")
    else:
        where = "the --test file" if test_file else f"a random {split or 0:.0%} of the rows"
        console.print(f"train then test: both models trained on the same {n_train:,} train "
                      f"rows (the online one in order, once) and scored on the same "
                      f"{n_test:,} test rows ({where}; the online one without learning them).")
    if repeat > 1:
        console.print(f"each cell: mean ± sd [min, max] over {repeat} runs.", markup=False)


def _curves(out: Path, curves: Sequence[tuple[str, list[Any], list[float]]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, display in (("roc", RocCurveDisplay), ("pr", PrecisionRecallDisplay)):
        fig, ax = plt.subplots(figsize=(5, 4.5))
        for label, y, p in curves:
            display.from_predictions(y, p, name=label, ax=ax)
        ax.set_title("ROC curve" if name == "roc" else "Precision-recall curve")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)

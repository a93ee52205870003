"""``frictionwatch evaluate`` on tables a data person brings (issue 16): ids and chosen columns
left out of the features, clear errors for a wrong label or positive value, the churn model,
a printed seed, train-then-test runs on the same rows, and the spread over repeated runs."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from models.evaluation import holdout, id_columns, spread, train_then_test
from streams.cli import app


def _table(path: Path, n: int = 120, seed: int = 0, positive: str = "Yes") -> Path:
    """A small churn-like table: an id, a leaky column, a noisy signal, a code."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customerID", "tenure", "spend", "plan", "leak", "Churn"])
        for i in range(n):
            churn = rng.random() < 0.3
            tenure = rng.randint(0, 20) + (0 if churn else 15)
            w.writerow([f"{i:04d}-X{rng.randint(0, 999):03d}", tenure,
                        f"{rng.random() * 100:.2f}", rng.choice("abc"), int(churn),
                        positive if churn else "No"])
    return path


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, ["evaluate", *args], env={"COLUMNS": "200"})


def _figure(output: str, metric: str, column: int = 0) -> float:
    line = next(ln for ln in output.splitlines() if re.match(rf"\W*{metric}\b", ln))
    return [float(v) for v in re.findall(r"\d+\.\d{3}", line)][column]


CHURN = ("--model", "churn", "--label", "Churn", "--positive", "Yes", "--categorical", "plan")


def test_drop_takes_repeated_and_comma_separated_columns_and_names_them(tmp_path: Path
                                                                      ) -> None:
    data = _table(tmp_path / "t.csv")
    leaky = _run(str(data), *CHURN)
    assert leaky.exit_code == 0, leaky.output
    assert _figure(leaky.output, "roc_auc", 1) == 1.0  # the batch trees find the leak
    res = _run(str(data), *CHURN, "--drop", "leak", "--drop", "plan,spend")
    assert res.exit_code == 0, res.output
    for col in ("leak", "plan", "spend"):
        assert f"dropped '{col}' (--drop)" in res.output
    assert _figure(res.output, "roc_auc", 1) < 1.0
    res = _run(str(data), *CHURN, "--drop", "leak,nope")
    assert res.exit_code == 2
    assert "no column 'nope' (--drop)" in res.stderr and "'customerID'" in res.stderr


def test_id_columns_are_dropped_unless_kept_and_measurements_are_not_ids(tmp_path: Path
                                                                         ) -> None:
    rows = [{"id": str(100 + i), "spend": f"{i * 1.25:.2f}", "code": "ab"[i % 2],
             "ref": f"r{i}", "y": "1"} for i in range(50)]
    assert id_columns(rows, exclude={"y"}) == ["id", "ref"]  # spend: unique, but a quantity
    rows[3]["ref"] = ""  # a missing value: not an id
    assert id_columns(rows) == ["id"]
    assert id_columns(rows[:1]) == []
    data = _table(tmp_path / "t.csv")
    res = _run(str(data), *CHURN, "--drop", "leak")
    assert res.exit_code == 0, res.output
    assert "dropped 'customerID': unique per row, an id (--keep-ids keeps it)" in res.output
    assert "dropped 'spend'" not in res.output
    kept = _run(str(data), *CHURN, "--drop", "leak", "--keep-ids")
    assert kept.exit_code == 0, kept.output
    assert "customerID" not in kept.output
    # One-hot ids are features no other row has: with them the online model's figures move.
    assert kept.output.split("took")[0] != res.output.split("took")[0]


def test_a_positive_value_no_row_has_is_an_error_listing_the_labels_values(tmp_path: Path
                                                                           ) -> None:
    data = _table(tmp_path / "t.csv")
    res = _run(str(data), "--model", "churn", "--label", "Churn", "--positive", "TRUE")
    assert res.exit_code == 2
    assert "no row has Churn == 'TRUE' (--positive)" in res.stderr
    assert re.search(r"'No \([\d,]+ rows\)', 'Yes \([\d,]+ rows\)'", res.stderr), res.stderr
    many = tmp_path / "many.csv"
    many.write_text("x,y\n" + "".join(f"{i},v{i}\n" for i in range(45)))
    res = _run(str(many), "--model", "churn", "--label", "y", "--positive", "v99")
    assert res.exit_code == 2 and "(25 more)" in res.stderr  # bounded list
    one = tmp_path / "one.csv"
    one.write_text("x,y\n" + "".join(f"{i},Yes\n" for i in range(10)))
    res = _run(str(one), "--model", "churn", "--label", "y", "--positive", "Yes")
    assert res.exit_code == 2 and "every row has y == 'Yes'" in res.stderr


def test_a_missing_label_or_text_column_is_an_error_listing_the_columns(tmp_path: Path
                                                                       ) -> None:
    data = _table(tmp_path / "t.csv")
    res = _run(str(data), "--model", "churn")  # the default label, Revenue, is not there
    assert res.exit_code == 2
    assert "no column 'Revenue' (--label); its columns: 'customerID', 'tenure'" in res.stderr
    res = _run(str(data), "--model", "triage", "--label", "Churn")
    assert res.exit_code == 2 and "no column 'text' (--text)" in res.stderr
    res = _run(str(data), "--model", "forest")
    assert res.exit_code == 2 and "purchase, churn, triage" in res.stderr


def test_churn_model_is_binary_and_the_seed_is_printed_and_used(tmp_path: Path) -> None:
    data = _table(tmp_path / "t.csv", n=150)
    res = _run(str(data), *CHURN)
    assert res.exit_code == 0, res.output
    assert "model churn; seed 0 (batch model, split)" in res.output
    assert "rows scored / positive" in res.output and _figure(res.output, "roc_auc") > 0.8
    args = (str(data), "--label", "Churn", "--positive", "Yes", "--drop", "leak")
    a, b, c = _run(*args), _run(*args), _run(*args, "--seed", "7")
    assert "seed 0 (online forest, batch model, split)" in a.output
    assert "seed 7 (online forest, batch model, split)" in c.output
    table = [r.output.split("took")[0] for r in (a, b, c)]
    assert table[0] == table[1]  # repeatable
    assert _figure(table[0], "roc_auc") != _figure(table[2], "roc_auc")  # the forest's seed


def test_split_and_test_file_score_both_models_on_the_same_test_rows(tmp_path: Path) -> None:
    data = _table(tmp_path / "t.csv", n=100)
    res = _run(str(data), *CHURN, "--split", "0.25")
    assert res.exit_code == 0, res.output
    assert "online, progressive (all 100 rows)" in res.output
    assert "online, train then test (the 25 test rows)" in res.output
    assert "HistGradientBoosting (the 25 test rows)" in res.output
    assert "same 75 train rows" in res.output
    assert re.search(r"rows scored / positive\W+100 / \d+\W+25 / (\d+)\W+25 / \1", res.output)
    held = _table(tmp_path / "test.csv", n=40, seed=1)
    res = _run(str(data), *CHURN, "--test", str(held))
    assert res.exit_code == 0, res.output
    assert "(the 40 test rows)" in res.output and "same 100 train rows" in res.output
    assert "the --test file" in res.output
    res = _run(str(data), *CHURN, "--test", str(held), "--split", "0.2")
    assert res.exit_code == 2 and "give one" in res.stderr
    res = _run(str(data), *CHURN, "--split", "1.5")
    assert res.exit_code == 2 and "between 0 and 1" in res.stderr
    # Without a split the batch column says it covers the held-out rows only.
    res = _run(str(data), *CHURN)
    assert "batch HistGradientBoosting (30 held-out rows, 30%)" in res.output
    assert "scored on the other 30 rows only" in res.output


def test_train_then_test_never_learns_a_test_row() -> None:
    class Memorizer:
        def __init__(self) -> None:
            self.seen: dict[str, bool] = {}

        def predict_proba_one(self, x: dict[str, str]) -> dict[bool, float]:
            y = self.seen.get(x["id"])
            return {} if y is None else {True: float(y), False: 1.0 - float(y)}

        def learn_one(self, x: dict[str, str], y: bool) -> None:
            self.seen[x["id"]] = y

    train = [({"id": str(i)}, i % 2 == 0) for i in range(10)]
    unseen = [({"id": "new"}, True)] * 3
    run = train_then_test(Memorizer(), train, train[:4] + unseen)
    assert run.scores == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # "new" answered blind each time
    train_idx, test_idx = holdout([True] * 30 + [False] * 70, 0.3, seed=0)
    assert len(test_idx) == 30 and sum(i < 30 for i in test_idx) == 9  # stratified


def test_repeat_prints_the_spread_of_each_figure_over_seeds_and_row_orders(tmp_path: Path
                                                                          ) -> None:
    data = _table(tmp_path / "t.csv", n=100)
    res = _run(str(data), *CHURN, "--repeat", "3", "--split", "0.3")
    assert res.exit_code == 0, res.output
    assert "3 runs, seeds 0..2 (batch model, split, row order)" in res.output
    assert "mean ± sd [min, max] over 3 runs" in res.output
    cell = re.search(r"roc_auc\W+(\d\.\d{3}) ± (\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]",
                     res.output)
    assert cell is not None, res.output
    mean, sd, lo, hi = map(float, cell.groups())
    assert lo <= mean <= hi and lo < hi and sd > 0  # the row orders differ
    s = spread([0.5, float("nan"), 0.7])
    assert s == {"mean": 0.6, "sd": spread([0.5, 0.7])["sd"], "min": 0.5, "max": 0.7}


def test_help_says_which_rows_each_figure_covers() -> None:
    res = CliRunner().invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert "scores every row, each predicted before the model learned it" in text
    assert "scored on the held-out 30% only" in text
    assert "scored on the same test rows" in text
    for option in ("--drop", "--keep-ids", "--seed", "--split", "--test", "--repeat"):
        assert option in text


def test_triage_takes_the_same_split_and_repeat_options() -> None:
    data = Path(__file__).parents[1] / "data" / "datasets" / "banking77_sample.csv"
    res = _run(str(data), "--model", "triage", "--label", "category", "--shuffle", "0",
               "--limit", "200", "--split", "0.3", "--repeat", "2")
    assert res.exit_code == 0, res.output
    assert re.search(r"rows scored\W+200\W+60\W+60", res.output), res.output
    assert "2 runs, seeds 0..1 (batch model, split, row order)" in res.output
    assert re.search(r"accuracy\W+\d\.\d{3} ± \d\.\d{3} \[", res.output)

"""The README stays true: its settings, topics, commands and the two quick-start commands."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app
from streams.settings import Settings
from streams.topics import TOPICS, topic_name

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _block_after(marker: str) -> str:
    m = re.search(rf"<!-- {marker} -->\s*```sh\n(.+?)\n```", README, re.S)
    assert m, marker
    return m.group(1)


def test_quick_start_commands() -> None:
    assert _block_after("demo-command") == (
        "python3 -m venv .venv && .venv/bin/pip install -q -c requirements.lock -e . "
        "&& .venv/bin/frictionwatch demo"
    )
    # .ci/run runs this exact line.
    assert _block_after("test-command") == (
        "python3 -m venv .venv && .venv/bin/pip install -q -c requirements.lock -e '.[test]' "
        "&& .venv/bin/pytest"
    )


def test_every_setting_is_documented_and_every_documented_one_exists() -> None:
    documented = set(re.findall(r"FRICTIONWATCH_([A-Z0-9_]+[A-Z0-9])", README))
    documented |= set(re.findall(r"`_([A-Z0-9_]+[A-Z0-9])`", README))  # `_SASL_USERNAME` shorthand
    documented.discard("TEST_BOOTSTRAP_SERVERS")  # the tests' broker, not a setting
    fields = {f.upper() for f in Settings.model_fields}
    assert documented - fields == set()
    assert fields - documented == set()


def test_every_topic_is_documented() -> None:
    for logical in TOPICS:
        assert f"`{topic_name(logical, 'fw.')}`" in README


def test_every_command_in_the_table_exists() -> None:
    listed = set(re.findall(r"^\| `frictionwatch (\w+)", README, re.M))
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in listed:
        assert re.search(rf"│ {name}\s", result.output), name

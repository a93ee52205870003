"""Every subcommand is registered and explains itself with --help."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from streams.cli import app

EXPECTED = {"worker", "simulate", "replay", "demo", "topics", "evaluate"}
runner = CliRunner()


def test_all_subcommands_registered() -> None:
    assert set(get_command(app).commands) >= EXPECTED  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_help(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    # A real description, not just the usage line.
    assert len(result.output.split("Usage:")[1].strip().splitlines()) > 3


def test_topics_lists_every_topic() -> None:
    from streams.topics import TOPICS

    result = runner.invoke(app, ["topics"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for spec in TOPICS.values():
        assert spec.suffix in result.output

"""deploy/ checked by the tools that load it: promtool (Prometheus config, alert rules and their
unit tests) and amtool (Alertmanager config).

Without the tools these tests skip; with ``FRICTIONWATCH_REQUIRE_TOOLS=1`` they fail instead.
On Debian: ``apt-get install prometheus prometheus-alertmanager``. When Docker Compose is
installed, the compose file is also checked with ``docker compose config`` (no engine needed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER_FILE = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
REQUIRE_ENV = "FRICTIONWATCH_REQUIRE_TOOLS"
INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed ({INSTALL_HINT})"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} and {REQUIRE_ENV}=1")
    pytest.skip(f"{message}; set {REQUIRE_ENV}=1 to fail instead")


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{output}"
    return output


def test_promtool_check_config() -> None:
    # rule_files are relative to prometheus.yml, so this loads the rules the container loads.
    out = run(tool("promtool"), "check", "config", PROMETHEUS / "prometheus.yml")
    found = re.search(r"(\d+) rule files? found", out)
    assert found and int(found.group(1)) >= 1, out


def test_promtool_check_rules() -> None:
    files = sorted((PROMETHEUS / "rules").glob("*.yml"))
    assert files
    run(tool("promtool"), "check", "rules", *files)


def test_promtool_rule_unit_tests() -> None:
    """Each alert fires when it should and stays quiet when it should not."""
    files = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert files
    run(tool("promtool"), "test", "rules", *files)


def test_amtool_check_config() -> None:
    run(tool("amtool"), "check-config", ALERTMANAGER_FILE)


def uncomment_examples(text: str) -> str:
    """The config with its ``# >>> example`` ... ``# <<< example`` blocks uncommented."""
    out, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# >>> example"):
            inside = True
            continue
        if stripped.startswith("# <<< example"):
            inside = False
            continue
        if inside:
            line = re.sub(r"^(\s*)# ?", r"\1", line, count=1)
        out.append(line)
    assert not inside, "an example block is not closed"
    return "\n".join(out) + "\n"


def test_amtool_check_config_with_the_cx_example(tmp_path: Path) -> None:
    """The commented CX-team webhook is valid once a user uncomments it."""
    text = uncomment_examples(ALERTMANAGER_FILE.read_text())
    config = yaml.safe_load(text)
    assert "cx-team" in {r["name"] for r in config["receivers"]}
    assert any(r["receiver"] == "cx-team" for r in config["route"]["routes"])
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    run(tool("amtool"), "check-config", path)


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    if (
        not docker
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30
        ).returncode
    ):
        pytest.skip("Docker Compose is not installed")
    run(docker, "compose", "-f", ROOT / "docker-compose.yml", "config", "--quiet")
    run(
        docker,
        "compose",
        "-f",
        ROOT / "docker-compose.yml",
        "--profile",
        "simulator",
        "config",
        "--quiet",
    )

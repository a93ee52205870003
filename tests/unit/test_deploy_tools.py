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


def _alerts() -> list[dict[str, object]]:
    return [rule for path in sorted((PROMETHEUS / "rules").glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def test_each_alert_reaches_its_audience() -> None:
    """Journey incidents go to the CX team's Slack; the pipeline's own health to the ops
    webhook (amtool's own routing, on the alerts' real labels)."""
    amtool = tool("amtool")
    config = yaml.safe_load(ALERTMANAGER_FILE.read_text())
    kinds = {r["name"]: set(r) - {"name"} for r in config["receivers"]}
    assert kinds == {"cx-slack": {"slack_configs"}, "ops-webhook": {"webhook_configs"}}
    alerts = _alerts()
    assert any(r["labels"].get("team") == "cx" for r in alerts)  # type: ignore[union-attr]
    for rule in alerts:
        labels = {"alertname": rule["alert"], **rule["labels"]}  # type: ignore[dict-item]
        out = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_FILE}",
                  *(f"{k}={v}" for k, v in labels.items()))
        want = "cx-slack" if labels.get("team") == "cx" else "ops-webhook"
        got = [line for line in out.splitlines() if line and not line.startswith("Warning")]
        assert got == [want], (rule["alert"], out)


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

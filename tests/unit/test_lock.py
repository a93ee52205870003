"""Pinned installs: requirements.lock pins the whole tree that the README commands, CI and the
Docker image install, and those installs really use it; the licence pyproject names ships."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: The extras the README's commands (test) and the Docker image (rocksdb) install.
EXTRAS = ("test", "rocksdb")


def pins() -> dict[str, str]:
    """``name == version`` lines of the lock, by canonical name."""
    out: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert m, f"requirements.lock: not an exact pin: {line!r}"
        out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def test_lock_pins_every_direct_requirement_at_a_version_pyproject_allows() -> None:
    locked = pins()
    wanted = list(PYPROJECT["project"]["dependencies"])
    for extra in EXTRAS:
        wanted += PYPROJECT["project"]["optional-dependencies"][extra]
    for spec in wanted:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock: bash .ci/relock --write"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={locked[name]}, pyproject wants {spec}: "
            "bash .ci/relock --write"
        )
    # The whole tree, not just the direct requirements (faust's and river's own dependencies).
    for transitive in ("mode-streaming", "numpy", "scipy", "pydantic", "yarl"):
        assert transitive in locked, transitive


def test_readme_commands_ci_and_image_install_with_the_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    for marker in ("demo-command", "test-command"):
        m = re.search(rf"<!-- {marker} -->\s*```sh\n(.+?)\n```", readme, re.S)
        assert m, marker
        assert re.search(r"pip install [^&]*-c requirements\.lock", m.group(1)), m.group(1)
    assert "-c requirements.lock" in (ROOT / ".ci" / "run").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"COPY requirements\.lock (\S+)", dockerfile)
    assert re.search(r"pip install -c \S*requirements\.lock", dockerfile)
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!requirements.lock" in ignore and "!LICENSE" in ignore


def test_licence_is_the_apache_2_text_pyproject_names() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text

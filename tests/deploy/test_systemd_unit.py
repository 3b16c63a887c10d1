"""The systemd unit (deploy/systemd/ebbflow.service) passes `systemd-analyze verify`, with
its ExecStart pointed at this checkout's installed `ebbflow` (verify checks that the
binary exists), and the role it sets is one ebbflow takes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ebbflow.config import AppConfig, env_overrides

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "ebbflow.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_verifies(tmp_path: Path) -> None:
    installed = Path(sys.executable).parent / "ebbflow"
    assert installed.exists()
    unit = tmp_path / "ebbflow.service"
    unit.write_text(UNIT.read_text().replace("/opt/ebbflow/bin/ebbflow", str(installed)))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    complaints = [line for line in done.stderr.splitlines() if "ebbflow.service" in line]
    assert done.returncode == 0 and not complaints, done.stderr


def test_the_roles_it_names_are_roles() -> None:
    text = UNIT.read_text()
    assert "Environment=EBBFLOW_ROLE=all" in text and "ExecReload=/bin/kill -HUP" in text
    for role in ("all", "agent", "decider"):
        overrides = env_overrides({"EBBFLOW_ROLE": role}, AppConfig.model_fields)
        assert AppConfig.model_validate(overrides).role == role

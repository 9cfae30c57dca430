"""The CI smoke run of the bench: speed never silently halves.

``python -m bench --quick --check`` measures every arm for a second, next to its
references in the same run, and fails when an arm's ratio falls below its floor in
``bench/floors.py`` (about half of what the arm gives on this machine kind). It needs
wrk and nginx (``bench/tools.sh`` installs them, as root); without them the test fails
under CI=true and skips locally.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
#: The quick run takes well under a minute; this only bounds a hung one.
TIMEOUT_SECONDS = 600


@pytest.mark.slow
def test_quick_bench_holds_the_floors(tmp_path: Path) -> None:
    if not IN_CI and (shutil.which("wrk") is None or shutil.which("nginx") is None):
        pytest.skip("wrk or nginx missing: as root, `bash bench/tools.sh` installs them")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--check", "--output-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"bench --quick --check failed:\n{done.stdout}\n{done.stderr}"
    (result,) = tmp_path.glob("bench-*.json")
    arms = {arm["key"]: arm["summary"] for arm in json.loads(result.read_text())["arms"]}
    assert arms["metadata/sqlite"]["errors"] == 0
    assert arms["metadata/sqlite"]["journal_records_per_commit"] is not None

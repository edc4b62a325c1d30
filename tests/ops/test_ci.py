"""`.ci/run`: make's exit status, and the failure screenshots of the run listed in CI's log."""

import os
import shutil
import subprocess
import time

import pytest

from tests.support import ROOT

FAKE_MAKE = """#!/bin/sh
[ "$*" = test ] || exit 99
mkdir -p test-artifacts/screenshots
for name in $SHOTS; do echo png > "test-artifacts/screenshots/$name"; done
exit $STATUS
"""


def run_ci(tmp_path, status, shots=""):
    """.ci/run in a copy of the repository's layout, with a `make` that fails as told."""
    (tmp_path / ".ci").mkdir(exist_ok=True)
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "make").write_text(FAKE_MAKE)
    (bin_dir / "make").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STATUS=str(status), SHOTS=shots)
    return subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)


def test_failing_run_lists_its_screenshots_and_keeps_makes_status(tmp_path):
    folder = tmp_path / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    for earlier in ("earlier-run.png", "rewritten.png"):
        (folder / earlier).write_text("png")
        os.utime(folder / earlier, (an_hour_ago, an_hour_ago))
    result = run_ci(
        tmp_path,
        2,
        "tests_test_browser_flows.py__test_x-0-0.png tests_test_browser_flows.py__test_x-0-0.html rewritten.png",
    )
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    header = next(
        number for number, line in enumerate(lines) if "failure screenshots (test-artifacts/screenshots/)" in line
    )
    assert lines[header + 1 :] == [
        "test-artifacts/screenshots/rewritten.png",
        "test-artifacts/screenshots/tests_test_browser_flows.py__test_x-0-0.html",
        "test-artifacts/screenshots/tests_test_browser_flows.py__test_x-0-0.png",
    ]  # this run's only: the earlier run's screenshot is not listed


@pytest.mark.parametrize("status, says", [(0, ""), (1, "(no failure screenshots under test-artifacts/screenshots/)\n")])
def test_run_without_screenshots(tmp_path, status, says):
    result = run_ci(tmp_path, status)
    assert (result.returncode, result.stdout) == (status, says)

"""The README's curl walkthrough, run verbatim by bash against `dpa-mock serve`: every step answers code 200."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mock_server.testing.server import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough() -> str:
    """The one bash block under "## Walkthrough", as a reader copies it."""
    section = README.read_text(encoding="utf-8").split("\n## Walkthrough", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the walkthrough should be one bash block a reader can paste"
    return blocks[0]


@pytest.mark.http
@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough is written for curl")
def test_the_walkthrough_runs_verbatim_and_every_step_succeeds(tmp_path: Path) -> None:
    script = walkthrough()
    assert script.startswith("BASE=http://127.0.0.1:29041\n"), "the first line names make serve's address"
    # Real clock, as `make serve` runs it: step 6 waits for the run with `sleep 2`.
    with ServerProcess(log=tmp_path / "serve.log") as server:
        script = script.replace("http://127.0.0.1:29041", server.base_url, 1)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Each command that prints (1.1, 2, 3, 5's echo, 6, 4) prints one envelope, in the walkthrough's order;
    # curl adds no newline, so they run together.
    answers, rest = [], done.stdout.strip()
    while rest:
        answer, end = json.JSONDecoder().raw_decode(rest)
        answers.append(answer)
        rest = rest[end:].lstrip()
    assert [a["code"] for a in answers] == [200] * 6, done.stdout
    code, plans, models, run, out_params, scene = (a["data"] for a in answers)
    assert code["code"]
    assert any(p["processPlanId"] == "acf42dd3" for p in plans)
    assert models, "step 3 shows the plan's workflows"
    instance = run[0]["planInstanceId"]
    assert out_params, f"step 6 shows the output parameters of run {instance}"
    assert scene is not None

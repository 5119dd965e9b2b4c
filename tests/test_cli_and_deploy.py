"""The command line, `up --detach`/`down`, configuration errors, README ↔ CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from scripts.cli import build_parser
from scripts.embedded import create_topics

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                          cwd=REPO)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie left for its parent to reap is not running any more
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_up_detach_then_down_leaves_no_process(tmp_path: Path) -> None:
    env = {"STYLESTREAM_HOME": str(tmp_path)}
    up = cli("up", "--detach", env=env)
    assert up.returncode == 0, up.stderr
    exports = dict(re.findall(r"export (STYLESTREAM_\w+)=(\S+)", up.stdout))
    assert redis.Redis.from_url(exports["STYLESTREAM_REDIS"]).ping()
    state = (tmp_path / "services.json").read_text()
    pids = [int(p) for p in re.findall(r'"(?:kafka|redis)_pid": (\d+)', state)]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    create_topics(exports["STYLESTREAM_KAFKA"], {"behavior-events": 4})  # broker answers
    down = cli("down", env=env)
    assert down.returncode == 0 and "stopped 2" in down.stdout
    assert not any(alive(p) for p in pids)
    assert cli("down", env=env).stdout.strip() == "nothing was running"


def test_configuration_errors_are_clear() -> None:
    result = cli("scores", "u1", env={"STYLESTREAM_REDIS": "", "STYLESTREAM_KAFKA": ""})
    assert result.returncode == 2
    assert "STYLESTREAM_REDIS is not set" in result.stderr
    result = cli("scores", "u1", env={"STYLESTREAM_DECAY_PER_DAY": "fast"})
    assert result.returncode == 2 and "STYLESTREAM_DECAY_PER_DAY='fast'" in result.stderr
    result = cli("scores", "u1", env={"STYLESTREAM_WEIGHTS": "view=1,cart=x"})
    assert result.returncode == 2 and "STYLESTREAM_WEIGHTS" in result.stderr
    assert "Traceback" not in result.stderr


DESIGN_VERBS = ("up", "down", "topics", "stream", "rerank", "demo", "catalog", "scores", "recs",
                "simulate", "features", "train", "prepare", "evaluate", "bench")


def test_every_design_verb_is_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Catches a verb that is missing, fails to register (its module raising at import) or
    whose parser is broken: ``stylestream VERB --help`` must print that verb's usage and exit 0,
    and ``stylestream --help`` must list it."""
    parser = build_parser()
    for verb in DESIGN_VERBS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([verb, "--help"])
        assert exit_info.value.code == 0, verb
        assert capsys.readouterr().out.startswith(f"usage: stylestream {verb}"), verb
    listed = cli("--help").stdout
    assert all(re.search(rf"^\s+{verb}\s", listed, re.MULTILINE) for verb in DESIGN_VERBS)


def test_log_format_option_and_setting() -> None:
    """Catches ``--log-format`` lost after a worker's verb (a sub-parser default overwriting
    the global option), and a bad STYLESTREAM_LOG_FORMAT ending in a traceback instead of a
    one-line error naming the variable."""
    parser = build_parser()
    assert parser.parse_args(["stream", "--log-format", "json"]).log_format == "json"
    assert parser.parse_args(["--log-format", "json", "rerank"]).log_format == "json"
    assert parser.parse_args(["rerank"]).log_format is None
    result = cli("scores", "u1", env={"STYLESTREAM_LOG_FORMAT": "xml"})
    assert result.returncode == 2 and "STYLESTREAM_LOG_FORMAT='xml'" in result.stderr
    assert "Traceback" not in result.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme_commands = [line for line in (REPO / "README.md").read_text().splitlines()
                       if line.startswith("python3 -m venv")]
    assert len(readme_commands) == 2
    assert "stylestream demo" in readme_commands[0]
    assert readme_commands[1] in (REPO / ".ci" / "run").read_text().splitlines()

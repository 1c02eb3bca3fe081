"""Every command the README prints, and every command `kobe demo` prints at its end, works verbatim
in a fresh shell after the README's two setup commands.

The rule, read from README.md:
- every fenced block names its language: `bash` blocks hold commands to type, `text` blocks hold
  layouts and command forms with placeholders (never run);
- the first two `bash` blocks are the setup commands (install and demo; install and this test
  suite). They are not typed here: the demo runs in a smaller form (`kobe demo --symbols 6
  --start 2023-06-01`) and the suite is what runs this test;
- the third `bash` block is the activation line a user types once in each new shell; it comes
  before every command below;
- every other line of a `bash` block is one command, except blank lines and lines that are only a
  comment. The commands run verbatim (bash reads any trailing comment), in README order, in one
  temporary copy of the clone whose state/ and data_lake/ the demo filled, so state carries over
  from one command to the next as it does for a user;
- a command that would serve until stopped (`dagster dev`, `dagster-daemon run`, `mlflow ui`,
  `mlflow server`) or that runs a benchmark (minutes and GiBs: `benchmarks/...`) runs as its line
  up to the comment with ` --help` added: the program and its script are on the PATH and start;
- each command runs in `bash -c "<activation>; <command>"` with nothing on the PATH but
  /usr/bin:/bin, HOME in a temporary folder, KOBE_STATE_DIR and KOBE_LAKE_DIR at the copy's own
  state/ and data_lake/, and must exit 0 without a Python traceback.

The demo's closing hints are the commands in its output that start with `kobe `, `dagster `,
`mlflow `, `python ` or `DAGSTER_HOME=` and end at two spaces, a `;` or `)` outside quotes, or the
line's end; the same rules apply.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
ACTIVATION = "source .venv/bin/activate"
CLEAN_PATH = "/usr/bin:/bin"
DEMO = "kobe demo --symbols 6 --start 2023-06-01"
SERVERS = (("dagster", "dev"), ("dagster-daemon", "run"), ("mlflow", "ui"), ("mlflow", "server"))
HINT_START = re.compile(r"(?<![\w/.-])(?:kobe|dagster|mlflow|python|DAGSTER_HOME=\S+) ")


@dataclass(frozen=True)
class Block:
    language: str
    first_line: int  # 1-based line number of the block's first content line
    lines: tuple[str, ...]


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    language, start, body = None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if language is None:
                language, start, body = line[3:].strip(), number + 1, []
            else:
                blocks.append(Block(language, start, tuple(body)))
                language = None
        elif language is not None:
            body.append(line)
    assert language is None, f"README.md: the block opened at line {start - 1} is never closed"
    return blocks


def readme_commands(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The activation line, and (README line number, command) for every command after it."""
    bash = [b for b in readme_blocks(text) if b.language == "bash"]
    activation = [line for line in bash[2].lines if line.strip()]
    assert activation == [ACTIVATION], f"README.md line {bash[2].first_line}: the third bash block must be the " \
                                       f"activation line alone, got {activation}"
    return ACTIVATION, [(block.first_line + i, line) for block in bash[3:] for i, line in enumerate(block.lines)
                        if line.strip() and not line.lstrip().startswith("#")]


def as_run(command: str) -> str:
    """The command as this test runs it: servers and benchmarks with `--help` (see the module rule)."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
    serves = tuple(words[:2]) in SERVERS
    benchmark = len(words) > 1 and words[0] == "python" and words[1].startswith("benchmarks/")
    if serves or benchmark:
        return re.sub(r"\s+#.*$", "", command) + " --help"
    return command


def hint_commands(output: str) -> list[str]:
    """The commands the demo's output hints at (the module rule)."""
    hints = []
    for line in output.splitlines():
        position = 0
        while (found := HINT_START.search(line, position)) is not None:
            end, quote = found.start(), None
            while end < len(line):
                char = line[end]
                if quote:
                    quote = None if char == quote else quote
                elif char in "\"'":
                    quote = char
                elif char in ";)" or line.startswith("  ", end):
                    break
                end += 1
            hints.append(line[found.start():end].strip())
            position = end
    return hints


class Clone:
    """A temporary copy of the clone: the repository's files linked, its own state/ and data_lake/,
    `.venv` linked to the environment running this test."""

    def __init__(self, root: Path):
        venv = Path(sys.prefix)
        assert (venv / "bin" / "activate").is_file(), f"this test runs from a virtual environment ({venv} is not one)"
        self.root = root / "clone"
        self.root.mkdir()
        for entry in REPO.iterdir():
            if entry.name not in (".git", ".venv", "state", "data_lake") and not entry.name.startswith("."):
                (self.root / entry.name).symlink_to(entry)
        (self.root / ".venv").symlink_to(venv)
        (self.root / "state").mkdir()
        (self.root / "data_lake").mkdir()
        self.home = root / "home"
        self.home.mkdir()

    def shell(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {"PATH": CLEAN_PATH, "HOME": str(self.home), "LANG": "C.UTF-8",
               "KOBE_STATE_DIR": str(self.root / "state"), "KOBE_LAKE_DIR": str(self.root / "data_lake"),
               "GX_ANALYTICS_ENABLED": "False"}  # no network: Great Expectations would report usage
        return subprocess.run(["/bin/bash", "-c", f"{ACTIVATION}\n{command}"], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=timeout)


def failure(where: str, command: str, result: subprocess.CompletedProcess) -> str | None:
    output = result.stdout + result.stderr
    if result.returncode == 0 and "Traceback (most recent call last)" not in output:
        return None
    return f"{where}: `{command}` exited {result.returncode}:\n{output[-1500:]}"


@pytest.fixture(scope="module")
def after_setup(tmp_path_factory) -> tuple[Clone, str]:
    clone = Clone(tmp_path_factory.mktemp("readme"))
    demo = clone.shell(DEMO, timeout=900)
    assert failure("the demo", DEMO, demo) is None, failure("the demo", DEMO, demo)
    return clone, demo.stdout


def test_readme_when_read_then_every_block_names_bash_or_text_and_activation_comes_third():
    text = README.read_text()
    unnamed = [b.first_line - 1 for b in readme_blocks(text) if b.language not in ("bash", "text")]
    assert unnamed == [], f"README.md: blocks at lines {unnamed} must say ```bash or ```text"
    activation, commands = readme_commands(text)
    assert activation == ACTIVATION and len(commands) >= 10
    assert all(not c.startswith(".venv/") for _, c in commands), "after activation, commands run by their names"


@pytest.mark.parametrize(("command", "run"), [
    ("DAGSTER_HOME=$PWD/state/dagster dagster dev -w workspace.yaml", "DAGSTER_HOME=$PWD/state/dagster dagster dev "
                                                                      "-w workspace.yaml --help"),
    ("python benchmarks/bench_lake.py            # 5,000 symbols", "python benchmarks/bench_lake.py --help"),
    ("kobe alerts flush           # mail everything", "kobe alerts flush           # mail everything"),
    ("mlflow ui --backend-store-uri sqlite:///state/mlflow/mlflow.db", "mlflow ui --backend-store-uri "
                                                                       "sqlite:///state/mlflow/mlflow.db --help"),
])
def test_as_run_when_server_or_benchmark_then_help_else_verbatim(command, run):
    assert as_run(command) == run


def test_hint_commands_when_demo_output_then_each_command_up_to_its_end():
    output = ('  query:     kobe lake query "SELECT symbol, count(*) AS bars FROM bars GROUP BY symbol"\n'
              "  state:     /tmp/x/state  (orders: kobe orders; models: kobe models list; halt: kobe halt status)\n"
              "  UI:        DAGSTER_HOME=/tmp/x/state/dagster dagster dev -w workspace.yaml   then open http://h:3000\n"
              "models: features, LSTM, trees, ridge, ensemble -> MLflow; kobe-lstm v1\n")
    assert hint_commands(output) == [
        'kobe lake query "SELECT symbol, count(*) AS bars FROM bars GROUP BY symbol"', "kobe orders",
        "kobe models list", "kobe halt status", "DAGSTER_HOME=/tmp/x/state/dagster dagster dev -w workspace.yaml"]


@pytest.mark.slow
def test_demo_hints_when_run_in_a_fresh_shell_then_each_exits_0(after_setup):
    clone, demo_output = after_setup
    hints = hint_commands(demo_output)
    assert {"kobe orders", "kobe models list"} <= set(hints), f"the demo printed no such hints:\n{demo_output[-2000:]}"
    assert any(h.startswith("kobe lake query ") for h in hints) and any(" dagster dev " in h for h in hints)
    problems = [failure("demo hint", hint, clone.shell(as_run(hint))) for hint in hints]
    assert [p for p in problems if p] == []


@pytest.mark.slow
def test_readme_commands_when_run_in_order_in_fresh_shells_then_each_exits_0(after_setup):
    clone, _ = after_setup
    _, commands = readme_commands(README.read_text())
    problems = [failure(f"README.md line {number}", command, clone.shell(as_run(command)))
                for number, command in commands]
    assert [p for p in problems if p] == []


@pytest.mark.slow
def test_readme_commands_when_environment_not_activated_then_kobe_is_not_found(after_setup):
    """The control: without the activation line the same shell finds no `kobe`, so the passing
    commands above owe their PATH to the README's activation line."""
    clone, _ = after_setup
    result = subprocess.run(["/bin/bash", "-c", "kobe halt status"], cwd=clone.root, capture_output=True, text=True,
                            env={"PATH": CLEAN_PATH, "HOME": str(clone.home)}, timeout=60)
    assert result.returncode == 127 and "kobe: command not found" in result.stderr

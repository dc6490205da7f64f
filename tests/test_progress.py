"""Progress on every long job through the CLI: import-chains, validate and export print plain lines on
stderr when not on a terminal (counts checked against what the job did), draw a rich bar on one (a real
pseudo-terminal), stay silent with --json and for jobs quicker than the interval."""

from __future__ import annotations

import datetime as dt
import math
import os
import pty
import re
import subprocess
import sys

import pyarrow.parquet as pq

from gexhistory.calendar import sessions_between
from gexhistory.engine.folds import fold_params
from helpers import REPO, rows, run_cli

EVERY_STEP = {"GEXHISTORY_PROGRESS_SECONDS": "0"}
LINE = re.compile(r"^(.+): (\d+)/(\d+) (\w+)(?: (\w+))? \(\d+\.\ds\)$")


def _progress(stderr: str) -> list[tuple[str, int, int, str]]:
    """(label, done, total, unit) of each plain progress line; every stderr line must be one."""
    out = []
    for line in stderr.splitlines():
        m = LINE.match(line)
        assert m, f"not a progress line: {line!r}"
        out.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
    return out


def _backfilled(tmp_path, symbols="SPY,QQQ", days="60") -> str:
    db = str(tmp_path / "g.db")
    assert run_cli(["backfill", "--symbols", symbols, "--days", days, "--quiet", "--db", db], tmp_path).returncode == 0
    return db


def test_export_lines_count_the_rows_written(tmp_path):
    db = _backfilled(tmp_path)
    out = run_cli(["export", "--table", "gex_history", "--out", "g.parquet", "--db", db], tmp_path, env=EVERY_STEP)
    assert out.returncode == 0, out.stderr
    n = rows(db, "SELECT COUNT(*) FROM gex_history")[0][0]
    assert pq.read_metadata(tmp_path / "g.parquet").num_rows == n
    assert _progress(out.stderr) == [("gex_history", n, n, "rows")]
    quiet = run_cli(["export", "--table", "gex_history", "--out", "g.csv", "--db", db, "--json"], tmp_path,
                    env=EVERY_STEP)
    assert quiet.returncode == 0 and quiet.stderr == ""
    # The default interval: a job quicker than a second prints no progress at all.
    fast = run_cli(["export", "--table", "gamma_history", "--out", "h.csv", "--db", db], tmp_path)
    assert fast.returncode == 0 and fast.stderr == ""


def _reference(path, n: int) -> list[dt.date]:
    """A reference file of `n` sessions: a smooth price path, and a 'published' GEX that falls with it."""
    days = [s.date for s in sessions_between(dt.date(2023, 1, 3), dt.date(2024, 12, 31))][:n]
    lines = ["date,price,gex"]
    for k, d in enumerate(days):
        price = 4000 + 300 * math.sin(k / 15) + k
        lines.append(f"{d},{price:.2f},{(price - 4000) * 1e7:.0f}")
    path.write_text("\n".join(lines) + "\n")
    return days


def test_validate_lines_follow_the_sessions_modelled(tmp_path):
    ref = tmp_path / "ref.csv"
    days = _reference(ref, 150)
    out = run_cli(["validate", "--reference", str(ref)], tmp_path, env=EVERY_STEP)
    assert out.returncode == 0, out.stderr
    steps = _progress(out.stderr)
    modelled = [s for s in steps if s[0] == "validate SPX"]
    assert {s[2] for s in modelled} == {len(days)} and modelled[0][3] == "sessions"
    # The first session only seeds the model; then chunks of 48 sessions (pipeline/validate.MODEL_CHUNK).
    assert [s[1] for s in modelled] == [49, 97, 145, 150]
    # Then the cross-validation's folds (engine/folds.py), each reported as it ends; none covers 2023-2024.
    folds = len(fold_params())
    assert steps[len(modelled):] == [("cross-validation", k, folds, "folds") for k in range(1, folds + 1)]
    assert "n (sessions)" in out.stdout
    as_json = run_cli(["validate", "--reference", str(ref), "--json"], tmp_path, env=EVERY_STEP)
    assert as_json.returncode == 0 and as_json.stderr == ""


def _chain_file(path, days: list[str], spot: float = 600.0) -> None:
    lines = ["date,underlying,expiration,strike,right,oi,iv,spot"]
    for day in days:
        for k in range(560, 645, 5):
            lines.append(f"{day},SPY,2025-07-18,{k},C,{2000 + 10 * (k - 560)},0.17,{spot}")
            lines.append(f"{day},SPY,2025-07-18,{k},P,{3000 - 20 * (k - 560)},0.21,{spot}")
    path.write_text("\n".join(lines) + "\n")


def test_import_chains_lines_follow_files_and_sessions(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _chain_file(a, ["2025-06-02", "2025-06-03"])
    _chain_file(b, ["2025-06-04"])
    db = str(tmp_path / "g.db")
    out = run_cli(["import-chains", str(a), str(b), "--db", db], tmp_path, env=EVERY_STEP)
    assert out.returncode == 0, out.stderr
    assert _progress(out.stderr) == [
        ("reading chain files", 1, 2, "files"), ("reading chain files", 2, 2, "files"),
        ("computing sessions", 1, 3, "sessions"), ("computing sessions", 2, 3, "sessions"),
        ("computing sessions", 3, 3, "sessions"),
        ("writing sessions", 1, 3, "sessions"), ("writing sessions", 2, 3, "sessions"),
        ("writing sessions", 3, 3, "sessions")]
    assert rows(db, "SELECT COUNT(*) FROM gamma_daily_summary")[0][0] == 3
    assert "2 chains, 68 contracts" in out.stdout and "1 chain, 34 contracts" in out.stdout
    assert "1 snapshot, spot from file" in out.stdout and "snapshot(s)" not in out.stdout


def test_a_bad_interval_is_bad_input(tmp_path):
    ref = tmp_path / "ref.csv"
    _reference(ref, 80)
    out = run_cli(["validate", "--reference", str(ref)], tmp_path, env={"GEXHISTORY_PROGRESS_SECONDS": "soon"})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == ["error: GEXHISTORY_PROGRESS_SECONDS='soon' is not a number"]
    db = _backfilled(tmp_path, "SPY", "5")
    out = run_cli(["export", "--table", "gex_history", "--out", "x.csv", "--db", db], tmp_path,
                  env={"GEXHISTORY_PROGRESS_SECONDS": "-1"})
    assert out.returncode == 2
    assert out.stderr == "error: GEXHISTORY_PROGRESS_SECONDS must be between 0 and 86400, got -1\n"
    assert not (tmp_path / "x.csv").exists()


def _on_a_terminal(args: list[str], cwd) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_PATH")}
    env.update(PYTHONPATH=str(REPO / "src"), TERM="xterm-256color", COLUMNS="120", LINES="40")
    proc = subprocess.Popen([sys.executable, "-m", "gexhistory", *args], cwd=cwd, env=env,
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_a_rich_bar(tmp_path):
    db = _backfilled(tmp_path)
    n = rows(db, "SELECT COUNT(*) FROM gex_history")[0][0]
    code, screen = _on_a_terminal(["export", "--table", "gex_history", "--out", "g.csv", "--db", db], tmp_path)
    assert code == 0, screen
    assert "\x1b[" in screen  # drawn with terminal control sequences, redrawn in place
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(rf"gex_history .*━.* {n}/{n} rows", plain), plain
    assert f"exported {n:,} rows of gex_history" in plain
    code, screen = _on_a_terminal(["backfill", "--symbol", "IWM", "--days", "30", "--db", db], tmp_path)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert code == 0 and plain.index("IWM: new symbol, synthetic prices") < plain.index("━")

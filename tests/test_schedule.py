"""`gexhistory schedule`: the printed crontab lines and systemd units parse and run the right commands, for
the symbols stored in the jobs' database, with the snapshot source the jobs' key allows."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO, run_cli

CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _cron_values(field: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in field.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            a, b = lo, hi
        elif "-" in base:
            a, b = (int(x) for x in base.split("-"))
        else:
            a = b = int(base)
        assert lo <= a <= b <= hi, (field, lo, hi)
        out.update(range(a, b + 1, int(step) if step else 1))
    return out


def _parse(stdout: str):
    cron, units, current = [], {}, None
    section = None
    for line in stdout.splitlines():
        if line.startswith("# ===== crontab"):
            section = "cron"
        elif line.startswith("# ===== systemd"):
            section = "systemd"
        elif m := re.match(r"# ----- (\S+) -----", line):
            current = m.group(1)
            units[current] = []
        elif section == "cron" and line and not line.startswith("#"):
            cron.append(line)
        elif current and line:
            units[current].append(line)
    return cron, units


def test_crontab_and_systemd_lines(tmp_path):
    out = run_cli(["schedule", "--project-dir", str(tmp_path), "--python", "/opt/py env/bin/python"], tmp_path)
    assert out.returncode == 0, out.stderr
    cron, units = _parse(out.stdout)
    assert cron[0] == "CRON_TZ=America/New_York"
    times: dict[str, set[tuple[int, int, int]]] = {}
    for line in cron[1:]:
        fields = line.split(None, 5)
        assert len(fields) == 6
        minutes, hours, dom, month, dow = (_cron_values(f, lo, hi) for f, (lo, hi) in zip(fields[:5], CRON_RANGES))
        assert dom == set(range(1, 32)) and month == set(range(1, 13))
        cmd = shlex.split(fields[5])
        assert cmd[:3] == ["cd", str(tmp_path), "&&"] and cmd[3:6] == ["/opt/py env/bin/python", "-m", "gexhistory"]
        key = " ".join(cmd[6:])
        times.setdefault(key, set()).update((d, h, m) for d in dow for h in hours for m in minutes)
    assert times["backfill --days 7 --quiet"] == {(d, 17, 0) for d in range(1, 6)}
    assert times["backfill --days 90 --quiet"] == {(0, 6, 0)}
    half_hours = [(h, m) for h in range(9, 17) for m in (0, 30) if (9, 30) <= (h, m) <= (16, 0)]
    # No key anywhere the jobs look: the keyless Cboe snapshot (an empty project: each command's default symbol).
    # ... every half hour, and 16:20 for the close (Cboe's quotes are 15 minutes late).
    assert times["snapshot --source cboe --quiet"] == {(d, h, m) for d in range(1, 6) for h, m in half_hours + [(16, 20)]}
    assert len(half_hours) == 14

    assert sorted(units) == sorted(f"gexhistory-{n}.{k}" for n in ("daily", "weekly", "snapshot")
                                   for k in ("service", "timer"))
    on_cal = re.compile(r"^OnCalendar=(Mon\.\.Fri|Sun) \*-\*-\* [0-9.,]+:[0-9,]+:00 America/New_York$")
    for name, lines in units.items():
        if name.endswith(".timer"):
            cal = [x for x in lines if x.startswith("OnCalendar=")]
            assert cal and all(on_cal.match(x) for x in cal), cal
            assert "WantedBy=timers.target" in lines
            if shutil.which("systemd-analyze"):
                r = subprocess.run(["systemd-analyze", "calendar", *[x.split("=", 1)[1] for x in cal]],
                                   capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
        else:
            assert f"WorkingDirectory={tmp_path}" in lines and "Type=oneshot" in lines
    daily = next(x for x in units["gexhistory-daily.service"] if x.startswith("ExecStart="))
    assert daily == 'ExecStart="/opt/py env/bin/python" -m gexhistory backfill --days 7 --quiet'
    assert "OnCalendar=Sun *-*-* 06:00:00 America/New_York" in units["gexhistory-weekly.timer"]
    assert "OnCalendar=Mon..Fri *-*-* 10..15:00,30:00 America/New_York" in units["gexhistory-snapshot.timer"]
    assert "OnCalendar=Mon..Fri *-*-* 16:20:00 America/New_York" in units["gexhistory-snapshot.timer"]


def test_schedule_defaults_and_symbols(tmp_path):
    out = run_cli(["schedule", "--symbols", "spy,qqq"], tmp_path)
    assert out.returncode == 0
    python = shlex.quote(sys.executable)
    assert f"cd {tmp_path} && {python} -m gexhistory backfill --days 7 --symbols SPY,QQQ --quiet" in out.stdout


def test_schedule_bad_project_dir(tmp_path):
    out = run_cli(["schedule", "--project-dir", str(tmp_path / "missing")], tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: project directory") and out.stdout == ""


def _jobs(stdout: str) -> dict[str, str]:
    """Crontab job name (daily, weekly, snapshot) -> its gexhistory arguments (the first line of each)."""
    cron, _ = _parse(stdout)
    out = {}
    for line in cron[1:]:
        args = shlex.split(line.split(None, 5)[5])[6:]
        name = "snapshot" if args[0] == "snapshot" else {"7": "daily", "90": "weekly"}[args[2]]
        out.setdefault(name, " ".join(args))
    return out


def _comments(stdout: str) -> str:
    """The crontab's comment lines, unwrapped into one text."""
    head = stdout[:stdout.index("CRON_TZ=America/New_York\n")]
    return " ".join(line[2:] for line in head.splitlines() if line.startswith("# "))


def test_schedule_fits_the_stored_symbols_and_the_key(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    ran = run_cli(["backfill", "--symbols", "SPY,QQQ", "--days", "10", "--quiet"], project)
    assert ran.returncode == 0, ran.stderr
    out = run_cli(["schedule", "--project-dir", str(project)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert _jobs(out.stdout) == {"daily": "backfill --days 7 --symbols QQQ,SPY --quiet",
                                 "weekly": "backfill --days 90 --symbols QQQ,SPY --quiet",
                                 "snapshot": "snapshot --source cboe --symbols QQQ,SPY --quiet"}
    notes = _comments(out.stdout)
    assert f"symbols: QQQ,SPY, those stored in {project / 'gex_copilot.db'}" in notes
    assert "no provider key (POLYGON_API_KEY or MASSIVE_API_KEY)" in notes and "Cboe's delayed quotes" in notes
    assert "QQQ, SPY hold synthetic rows" in notes
    assert 'ExecStart=' in out.stdout and "snapshot --source cboe --symbols QQQ,SPY --quiet" in out.stdout

    # The daily job as cron would run it: in the project folder, with its database.
    daily = next(line for line in _parse(out.stdout)[0] if "--days 7" in line).split(None, 5)[5]
    job = subprocess.run(daily, shell=True, capture_output=True, text=True, timeout=300,
                         env={**_clean_env(), "PYTHONPATH": str(REPO / "src")})
    assert job.returncode == 0, job.stderr
    assert job.stdout.count("\n") == 1 and "QQQ,SPY" in job.stdout and "SYNTHETIC DATA" in job.stdout

    # A key in the project's .env: Massive's snapshot, no keyless comment.
    (project / ".env").write_text("POLYGON_API_KEY=k-123\n")
    keyed = run_cli(["schedule", "--project-dir", str(project)], tmp_path)
    assert _jobs(keyed.stdout)["snapshot"] == "snapshot --symbols QQQ,SPY --quiet"
    assert "no provider key" not in keyed.stdout and "k-123" not in keyed.stdout
    # A key in this shell only: Massive's, and a warning that the jobs will not see it.
    (project / ".env").write_text("")
    shell = run_cli(["schedule", "--project-dir", str(project)], tmp_path, env={"MASSIVE_API_KEY": "k-456"})
    assert _jobs(shell.stdout)["snapshot"] == "snapshot --symbols QQQ,SPY --quiet"
    assert "MASSIVE_API_KEY is set in this shell but not in" in _comments(shell.stdout)
    # --symbols wins over the stored ones.
    chosen = run_cli(["schedule", "--project-dir", str(project), "--symbols", "iwm"], tmp_path)
    assert _jobs(chosen.stdout)["daily"] == "backfill --days 7 --symbols IWM --quiet"


def test_schedule_reads_the_database_the_jobs_will_use(db_url, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    empty = run_cli(["schedule", "--project-dir", str(project)], tmp_path)
    assert _jobs(empty.stdout)["daily"] == "backfill --days 7 --quiet"  # nothing stored: each command's default
    assert "no symbols stored in" in _comments(empty.stdout)
    assert run_cli(["backfill", "--symbol", "IWM", "--days", "5", "--quiet", "--db", db_url], tmp_path).returncode == 0
    given = run_cli(["schedule", "--project-dir", str(project), "--db", db_url], tmp_path)
    assert given.returncode == 0, given.stderr
    want_db = db_url if "://" in db_url else str(Path(db_url).absolute())
    assert _jobs(given.stdout)["daily"] == f"backfill --days 7 --symbols IWM --db {want_db} --quiet"
    # The project's .env names the database (a relative path is the jobs' folder's).
    if "://" not in db_url:
        shutil.copy(db_url, project / "other.db")
        (project / ".env").write_text("DATABASE_PATH=other.db\n")
    else:
        (project / ".env").write_text(f"DATABASE_URL={db_url}\n")
    from_env = run_cli(["schedule", "--project-dir", str(project)], tmp_path)
    assert _jobs(from_env.stdout)["weekly"] == "backfill --days 90 --symbols IWM --quiet"


def test_schedule_refuses_a_password_on_the_command_line(tmp_path):
    url = "postgresql://u:secret@127.0.0.1:1/db"
    out = run_cli(["schedule", "--project-dir", str(tmp_path), "--db", url], tmp_path)
    assert out.returncode == 2 and out.stdout == "" and "secret" not in out.stderr
    assert out.stderr.startswith("error: --db postgresql://u:***@127.0.0.1:1/db holds a password")


def _clean_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items()
            if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH")}

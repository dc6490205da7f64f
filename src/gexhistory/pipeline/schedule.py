"""Ready-to-paste schedules for the guide's refreshes: crontab lines and systemd service+timer pairs.

The jobs fit the database they will run against:
- symbols: `--symbols` when given, else every symbol stored in that database (a QQQ backfilled once is
  refreshed too), else each command's own default (SPY) while the database is still empty;
- snapshots: Massive's chain snapshot when the jobs will have a provider key, else Cboe's delayed
  quotes, which need none (`snapshot --source cboe`), said so in a comment line;
- the database and the key are what the jobs will see: they run in the project folder with its .env,
  not with this shell's environment, and a comment says so when the two differ.

All times are New York time, whatever zone the machine runs in: cron through CRON_TZ (cronie and
systemd-cron honour it; on a cron that ignores it, the machine's own zone must be America/New_York),
systemd through the zone written at the end of each OnCalendar= expression (systemd 235 or later).
"""

from __future__ import annotations

import os
import shlex
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from gexhistory.config import DEFAULT_DB_FILE, database_url, redact_url
from gexhistory.errors import BadInput
from gexhistory.sources.select import KEY_VARS
from gexhistory.store import queries
from gexhistory.store.readonly import open_readonly

TZ = "America/New_York"


@dataclass(frozen=True)
class Job:
    name: str  # systemd unit name suffix
    title: str
    args: tuple[str, ...]  # gexhistory arguments
    cron: tuple[str, ...]  # crontab time fields (minute hour day-of-month month day-of-week), one or more
    on_calendar: tuple[str, ...]  # systemd OnCalendar expressions, zone appended


JOBS = (
    Job("daily", "daily refresh: the last 7 days, 17:00 ET on weekdays",
        ("backfill", "--days", "7"), ("0 17 * * 1-5",), ("Mon..Fri *-*-* 17:00:00",)),
    Job("weekly", "weekly refresh: the last 90 days, Sunday 06:00 ET",
        ("backfill", "--days", "90"), ("0 6 * * 0",), ("Sun *-*-* 06:00:00",)),
    Job("snapshot", "intraday snapshots: every 30 minutes 09:30-16:00 ET on weekdays (holidays are skipped)",
        ("snapshot",), ("30 9 * * 1-5", "0,30 10-15 * * 1-5", "0 16 * * 1-5"),
        ("Mon..Fri *-*-* 09:30:00", "Mon..Fri *-*-* 10..15:00,30:00", "Mon..Fri *-*-* 16:00:00")),
)
KEYLESS_SNAPSHOT = ("--source", "cboe")  # Cboe's delayed quotes: a real chain, no key
# Cboe's quotes run about 15 minutes late, so the 16:00 run sees 15:45's: one more run after the close
# takes the closing chain (quotes stamped after the close are the session's close snapshot).
AFTER_CLOSE = ("20 16 * * 1-5", "Mon..Fri *-*-* 16:20:00",
               "and 16:20 ET for the close (Cboe's quotes are 15 minutes late)")


@dataclass
class Plan:
    """What the jobs will see, and the comment lines that explain it."""

    symbols: str | None  # "QQQ,SPY" for every job, or None: each command's default
    keyless: bool  # no provider key for the jobs: the Cboe snapshot instead of Massive's
    db: str | None  # --db for every job (given on the command line), else None: the project's own
    notes: list[str] = field(default_factory=list)


def _checked(path: str, what: str) -> str:
    # '%' ends a crontab command and a newline ends the line: such a path cannot be pasted safely.
    if "%" in path or "\n" in path:
        raise BadInput(f"{what} {path!r} contains '%' or a newline, which crontab cannot hold")
    return path


def _project_env(project: Path) -> dict[str, str]:
    """The project's .env as the jobs will read it (variables without a value left out)."""
    env_file = project / ".env"
    if not env_file.is_file():
        return {}
    from dotenv import dotenv_values  # lazy: only when the project has a .env

    return {k: v for k, v in dotenv_values(env_file).items() if v}


def _jobs_database(project: Path, db: str | None, env: dict[str, str]) -> tuple[str, list[str]]:
    """The database the jobs will use (as database_url takes it) and what to tell the user about it."""
    if db:
        return db, []
    value = env.get("DATABASE_URL") or env.get("DATABASE_PATH")
    notes = []
    shell = os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_PATH")
    if value is None:
        value = str(project / DEFAULT_DB_FILE)
        if shell:
            notes.append(f"DATABASE_URL/DATABASE_PATH is set in this shell but not in {project / '.env'}: the jobs "
                         f"do not see this shell's environment and use {value}; put it in that .env to change it")
    elif "://" not in value:  # a relative path in .env is relative to the folder the jobs run in
        value = str((project / value).expanduser())
    return value, notes


def _stored(url: str) -> tuple[list[str], set[str]]:
    """(stored symbols, those holding synthetic rows) of the jobs' database; none while it does not exist."""
    from sqlalchemy.exc import SQLAlchemyError  # lazy: only to word a database fault

    try:
        engine = open_readonly(url)
        if engine is None:
            return [], set()
        try:
            names = queries.symbols(engine)
            synthetic = {s for s in names if any(r["data_source"] == "synthetic" for r in queries.sources(engine, s))}
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BadInput(f"cannot read the stored symbols from {redact_url(database_url(url))}: {reason} "
                       f"(give --symbols to schedule without reading it)") from None
    return names, synthetic


def plan(project: Path, db: str | None = None, symbols: str | None = None) -> Plan:
    """The symbols, snapshot source and database the jobs get, read from `project` and its database."""
    env = _project_env(project)
    if db and "://" in db and redact_url(db) != db:
        raise BadInput(f"--db {redact_url(db)} holds a password, which would be written into the crontab and unit "
                       f"files: put DATABASE_URL in {project / '.env'} instead")
    if db and "://" not in db:
        db = str(Path(db).expanduser().absolute())
    url, notes = _jobs_database(project, db, env)
    full = database_url(url)
    where = full[len("sqlite:///"):] if full.startswith("sqlite:///") else redact_url(full)
    stored, synthetic = _stored(url)
    if symbols is None and stored:
        symbols = ",".join(stored)
        notes.append(f"symbols: {symbols}, those stored in {where} (--symbols to choose others)")
    elif symbols is None:
        notes.append(f"no symbols stored in {where} yet: the jobs use each command's default (SPY); run "
                     f"`gexhistory schedule` again after backfilling other symbols")
    in_env = [v for v in KEY_VARS if env.get(v)]
    in_shell = [v for v in KEY_VARS if (os.environ.get(v) or "").strip()]
    keyless = not in_env and not in_shell
    if keyless:
        notes.append(f"no provider key ({' or '.join(KEY_VARS)}) in {project / '.env'} or this environment: the "
                     f"snapshots use Cboe's delayed quotes, which need none (snapshot --source cboe), and the "
                     f"refreshes extend the synthetic history")
    elif not in_env:
        notes.append(f"{in_shell[0]} is set in this shell but not in {project / '.env'}: cron and systemd do not pass "
                     f"this shell's environment to the jobs, so add it to that .env")
    mixed = [s for s in (symbols.split(",") if symbols else ["SPY"]) if s in synthetic]
    if mixed:  # every snapshot source is real: beside synthetic sessions, the health check will say so
        notes.append(f"{', '.join(mixed)} {'holds' if len(mixed) == 1 else 'hold'} synthetic rows: real snapshots "
                     f"beside them are reported by `status --check` as mixed_sources")
    return Plan(symbols, keyless, db, notes)


def _timing(job: Job, p: Plan) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(title, cron fields, OnCalendar expressions) of `job` for this plan."""
    if job.name == "snapshot" and p.keyless:
        return f"{job.title} {AFTER_CLOSE[2]}", (*job.cron, AFTER_CLOSE[0]), (*job.on_calendar, AFTER_CLOSE[1])
    return job.title, job.cron, job.on_calendar


def _command(python: str, job: Job, p: Plan) -> list[str]:
    args = list(job.args)
    if job.name == "snapshot" and p.keyless:
        args += KEYLESS_SNAPSHOT
    if p.symbols:
        args += ["--symbols", p.symbols]
    if p.db:
        args += ["--db", p.db]
    return [python, "-m", "gexhistory", *args, "--quiet"]


def crontab(project_dir: str, python: str, p: Plan) -> str:
    lines = [
        "# gexhistory schedule: paste into `crontab -e`.",
        f"# CRON_TZ makes the times below {TZ} time (cronie, systemd-cron). If your cron ignores",
        f"# CRON_TZ (Debian's classic cron does), set the machine's zone to {TZ} or shift the hours.",
        *(f"# {line}" for note in p.notes for line in textwrap.wrap(note, 98, break_on_hyphens=False)),
        f"CRON_TZ={TZ}",
    ]
    cd = f"cd {shlex.quote(project_dir)} &&"
    for job in JOBS:
        cmd = shlex.join(_command(python, job, p))
        title, cron, _ = _timing(job, p)
        lines.append(f"# {title}")
        lines += [f"{fields} {cd} {cmd}" for fields in cron]
    return "\n".join(lines) + "\n"


def _systemd_quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\"'\\$;%"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%") + '"'


def systemd_units(project_dir: str, python: str, p: Plan) -> list[tuple[str, str]]:
    """(file name, content) for every service and timer, to go in /etc/systemd/system/."""
    units = []
    for job in JOBS:
        name = f"gexhistory-{job.name}"
        exec_start = " ".join(_systemd_quote(a) for a in _command(python, job, p))
        title, _, on_calendar = _timing(job, p)
        units.append((f"{name}.service", "\n".join([
            "[Unit]", f"Description=gexhistory {title}", "",
            "[Service]", "Type=oneshot", f"WorkingDirectory={project_dir}", f"ExecStart={exec_start}", "",
        ])))
        units.append((f"{name}.timer", "\n".join([
            "[Unit]", f"Description=Timer for gexhistory {title}", "",
            "[Timer]", *[f"OnCalendar={expr} {TZ}" for expr in on_calendar],
            *(["Persistent=true"] if job.name != "snapshot" else []), "",
            "[Install]", "WantedBy=timers.target", "",
        ])))
    return units


def render(project_dir: str | None = None, python: str | None = None, symbols: str | None = None,
           db: str | None = None) -> str:
    """The whole text `gexhistory schedule` prints."""
    project = Path(project_dir or ".").expanduser().absolute()
    if not project.is_dir():
        raise BadInput(f"project directory {project} does not exist")
    py = _checked(str(Path(python).expanduser().absolute()) if python else sys.executable, "python")
    proj = _checked(str(project), "project directory")
    p = plan(project, db, symbols)
    if p.db:
        _checked(p.db, "--db")
    out = ["# ===== crontab =====", crontab(proj, py, p).rstrip("\n"), "",
           "# ===== systemd (alternative to cron): save each file under /etc/systemd/system/, then",
           "#   systemctl daemon-reload && systemctl enable --now " +
           " ".join(f"gexhistory-{j.name}.timer" for j in JOBS)]
    for fname, content in systemd_units(proj, py, p):
        out += ["", f"# ----- {fname} -----", content.rstrip("\n")]
    return "\n".join(out) + "\n"

"""Ready-to-paste schedules for the guide's refreshes: crontab lines and systemd service+timer pairs.

All times are New York time, whatever zone the machine runs in: cron through CRON_TZ (cronie and
systemd-cron honour it; on a cron that ignores it, the machine's own zone must be America/New_York),
systemd through the zone written at the end of each OnCalendar= expression (systemd 235 or later).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from gexhistory.errors import BadInput

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
        ("backfill", "--days", "7", "--quiet"), ("0 17 * * 1-5",), ("Mon..Fri *-*-* 17:00:00",)),
    Job("weekly", "weekly refresh: the last 90 days, Sunday 06:00 ET",
        ("backfill", "--days", "90", "--quiet"), ("0 6 * * 0",), ("Sun *-*-* 06:00:00",)),
    Job("snapshot", "intraday snapshots: every 30 minutes 09:30-16:00 ET on weekdays (holidays are skipped)",
        ("snapshot", "--quiet"), ("30 9 * * 1-5", "0,30 10-15 * * 1-5", "0 16 * * 1-5"),
        ("Mon..Fri *-*-* 09:30:00", "Mon..Fri *-*-* 10..15:00,30:00", "Mon..Fri *-*-* 16:00:00")),
)


def _checked(path: str, what: str) -> str:
    # '%' ends a crontab command and a newline ends the line: such a path cannot be pasted safely.
    if "%" in path or "\n" in path:
        raise BadInput(f"{what} {path!r} contains '%' or a newline, which crontab cannot hold")
    return path


def _command(python: str, job: Job, symbols: str | None) -> list[str]:
    args = list(job.args)
    if symbols:
        args += ["--symbols", symbols]
    return [python, "-m", "gexhistory", *args]


def crontab(project_dir: str, python: str, symbols: str | None = None) -> str:
    lines = [
        "# gexhistory schedule: paste into `crontab -e`.",
        f"# CRON_TZ makes the times below {TZ} time (cronie, systemd-cron). If your cron ignores",
        f"# CRON_TZ (Debian's classic cron does), set the machine's zone to {TZ} or shift the hours.",
        f"CRON_TZ={TZ}",
    ]
    cd = f"cd {shlex.quote(project_dir)} &&"
    for job in JOBS:
        cmd = shlex.join(_command(python, job, symbols))
        lines.append(f"# {job.title}")
        lines += [f"{fields} {cd} {cmd}" for fields in job.cron]
    return "\n".join(lines) + "\n"


def _systemd_quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\"'\\$;"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def systemd_units(project_dir: str, python: str, symbols: str | None = None) -> list[tuple[str, str]]:
    """(file name, content) for every service and timer, to go in /etc/systemd/system/."""
    units = []
    for job in JOBS:
        name = f"gexhistory-{job.name}"
        exec_start = " ".join(_systemd_quote(a) for a in _command(python, job, symbols))
        units.append((f"{name}.service", "\n".join([
            "[Unit]", f"Description=gexhistory {job.title}", "",
            "[Service]", "Type=oneshot", f"WorkingDirectory={project_dir}", f"ExecStart={exec_start}", "",
        ])))
        units.append((f"{name}.timer", "\n".join([
            "[Unit]", f"Description=Timer for gexhistory {job.title}", "",
            "[Timer]", *[f"OnCalendar={expr} {TZ}" for expr in job.on_calendar],
            *(["Persistent=true"] if job.name != "snapshot" else []), "",
            "[Install]", "WantedBy=timers.target", "",
        ])))
    return units


def render(project_dir: str | None = None, python: str | None = None, symbols: str | None = None) -> str:
    """The whole text `gexhistory schedule` prints."""
    project = Path(project_dir or ".").expanduser().absolute()
    if not project.is_dir():
        raise BadInput(f"project directory {project} does not exist")
    py = _checked(str(Path(python).expanduser().absolute()) if python else sys.executable, "python")
    proj = _checked(str(project), "project directory")
    out = ["# ===== crontab =====", crontab(proj, py, symbols).rstrip("\n"), "",
           "# ===== systemd (alternative to cron): save each file under /etc/systemd/system/, then",
           "#   systemctl daemon-reload && systemctl enable --now " +
           " ".join(f"gexhistory-{j.name}.timer" for j in JOBS)]
    for fname, content in systemd_units(proj, py, symbols):
        out += ["", f"# ----- {fname} -----", content.rstrip("\n")]
    return "\n".join(out) + "\n"

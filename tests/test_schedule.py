"""`gexhistory schedule`: the printed crontab lines and systemd units parse and run the right commands."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

from helpers import run_cli

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
    assert times["snapshot --source cboe --quiet"] == {(d, h, m) for d in range(1, 6) for h, m in half_hours}
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


def test_schedule_defaults_and_symbols(tmp_path):
    out = run_cli(["schedule", "--symbols", "spy,qqq"], tmp_path)
    assert out.returncode == 0
    assert f"cd {tmp_path} && {shlex.quote(sys.executable)} -m gexhistory backfill --days 7 --symbols SPY,QQQ --quiet" in out.stdout


def test_schedule_bad_project_dir(tmp_path):
    out = run_cli(["schedule", "--project-dir", str(tmp_path / "missing")], tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: project directory") and out.stdout == ""

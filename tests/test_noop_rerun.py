"""A rerun with nothing to compute: same record and summary as before, without numpy or the engine.

The no-op's speed (SPEC §9) comes from what it does not import; its wall time is measured by
benchmarks/backfill.py. Here: the parameters it records are still the engine's, it says what it
skipped, and the modules that only computing needs stay unloaded.
"""

from __future__ import annotations

import json

import numpy as np

from gexhistory.engine import chain_model, exposure, params
from helpers import rows, run_cli

WINDOW = ["--start", "2025-06-02", "--end", "2025-06-13", "--source", "synthetic", "--db", "g.db"]
# Loaded by a run that computes sessions; a no-op must not need any of them.
COMPUTE_MODULES = ("numpy", "gexhistory.engine.exposure", "gexhistory.engine.chain_model",
                   "gexhistory.engine.summary", "gexhistory.engine.signals", "gexhistory.pipeline.signals")
# Runs the CLI in this process, then says which of COMPUTE_MODULES it loaded (on stderr, after the CLI's output).
PROBE = f"""import json, sys
from gexhistory.cli import main
try:
    main(args=sys.argv[1:], prog_name="gexhistory")
finally:
    print("LOADED", json.dumps([m for m in {COMPUTE_MODULES!r} if m in sys.modules]), file=sys.stderr)
"""


def _loaded(stderr: str) -> list[str]:
    line = [x for x in stderr.splitlines() if x.startswith("LOADED ")][-1]
    return json.loads(line[len("LOADED "):])


def _probe(tmp_path) -> str:
    """The probe script's absolute path (run_cli joins `script` to the repository root, which keeps it)."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    return str(probe)


def test_parameters_keep_their_old_names_and_values():
    assert exposure.Conventions is params.Conventions and chain_model.ModelParams is params.ModelParams
    assert (exposure.FLIP_SEARCH, exposure.NEUTRAL_BAND) == (params.FLIP_SEARCH, params.NEUTRAL_BAND) == (0.20, 0.05)
    # As recorded in backfill_runs.parameters before they moved (the window 120 days since issue 19; 60 before).
    assert params.Conventions().as_dict() == {
        "r": 0.04, "q": 0.013, "dte_window": 120, "time_convention": "calendar_seconds_to_expiry_close_over_365d",
        "gamma_source": "black_scholes", "flip_search": 0.2, "neutral_band": 0.05}
    # As fitted on 2011-2022 by benchmarks/calibrate_chain_model.py (calibration_2011_2022.log, and
    # calibration_2011_2022_edges.log for stage 3: strikes_added_within, then flow_scale).
    assert params.ModelParams().as_dict() == {
        "step_fraction": 0.0085, "oi_turnover": 0.012, "activity_elasticity": 0.8295, "dte_decay_days": 80.31,
        "dte_decay_days_midweek": 50.5319, "monthly_weight": 4.3548, "put_call_volume": 0.8058,
        "put_call_vol_elasticity": 0.1663, "call_center_sd": 1.0732, "put_center_sd": -2.1206,
        "call_width_sd": 0.6667, "put_width_sd": 0.7065, "round_strike_boost": 1.6, "iv_premium": 1.3453,
        "iv_long_run": 0.18, "iv_term_days": 60.0, "skew_slope": -0.3334, "skew_curve": 0.02,
        "flow_scale": 0.06, "dte_window": 120, "strikes_added_within": 0.12}


def test_noop_rerun_records_the_same_run_without_the_engine(tmp_path):
    probe = _probe(tmp_path)
    cold = run_cli(["backfill", "--json", *WINDOW], tmp_path, script=probe)
    assert cold.returncode == 0, cold.stderr
    assert set(_loaded(cold.stderr)) == set(COMPUTE_MODULES)  # the probe sees what computing loads

    again = run_cli(["backfill", "--json", *WINDOW], tmp_path, script=probe)
    assert again.returncode == 0, again.stderr
    assert _loaded(again.stderr) == []
    first, second = json.loads(cold.stdout), json.loads(again.stdout)
    assert second["totals"]["gex_history"] == {"inserted": 0, "skipped": 4 * 10, "replaced": 0}
    assert second["totals"]["gamma_daily_summary"] == {"inserted": 0, "skipped": 10, "replaced": 0}
    assert second["synthetic"] and second["notes"] == first["notes"]

    runs = rows(str(tmp_path / "g.db"), "SELECT id, parameters, versions, status FROM backfill_runs ORDER BY id")
    assert [r[0] for r in runs] == [first["run_id"], second["run_id"]] and runs[1][3] == "ok"
    assert runs[1][1] == runs[0][1] and runs[1][2] == runs[0][2]
    recorded = json.loads(runs[1][1])
    assert recorded["conventions"] == params.Conventions().as_dict() and recorded["seed"] == 42
    assert json.loads(runs[1][2])["numpy"] == np.__version__


def test_plain_rerun_prints_its_summary_without_the_engine(tmp_path):
    assert run_cli(["backfill", "--quiet", *WINDOW], tmp_path).returncode == 0
    again = run_cli(["backfill", *WINDOW], tmp_path, env={"COLUMNS": "200"}, script=_probe(tmp_path))
    assert again.returncode == 0, again.stderr
    assert _loaded(again.stderr) == []
    assert "SYNTHETIC DATA" in again.stdout and "nothing to do" in again.stdout

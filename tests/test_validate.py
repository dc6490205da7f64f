"""`gexhistory validate`: the metrics against independent computations, and the CLI's contract."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.engine.validation import average_ranks, compare, drawdown_feature, spearman
from helpers import REPO, run_cli

DATA = Path(__file__).resolve().parent / "data"
# SqueezeMetrics' S&P 500 close and GEX, 2011-05-02..2022-12-30 (tests/data/README.md): its first
# 1,930 rows are the older 2011-2018 file, so the small samples below are cut from it.
REFERENCE = DATA / "spx_gex_2011_2022.csv"

# What benchmarks/calibrate_chain_model.py reported for the ModelParams defaults, fitted on all of
# 2011-05..2022-12 (benchmarks/results/calibration_2011_2022_edges.log, stage 3 after the search of
# calibration_2011_2022.log): in-sample figures, since no year of the file is held out from the
# defaults (the held-out figures are those of the cross-validation, crossvalidation_edges.log). A change of the model that moves these figures must update
# them (and the README) deliberately.
REPORTED_IN_SAMPLE_SPEARMAN = 0.897
REPORTED_IN_SAMPLE_SIGN = 0.953
REPORTED_BASELINE_SPEARMAN = 0.715
REPORTED_IN_SAMPLE_BY_YEAR = {2011: 0.922, 2012: 0.864, 2013: 0.804, 2014: 0.870, 2015: 0.951, 2016: 0.876,
                              2017: 0.853, 2018: 0.942, 2019: 0.947, 2020: 0.846, 2021: 0.738, 2022: 0.896}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.floats(-1e9, 1e9, allow_nan=False)), min_size=3, max_size=60))
def test_spearman_matches_scipy_with_ties(pairs):
    from scipy.stats import spearmanr

    x = np.array([p[0] for p in pairs], float)
    y = np.array([p[1] for p in pairs], float)
    ours = spearman(x, y)
    theirs = spearmanr(x, y).statistic
    if np.isnan(theirs):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(theirs, abs=1e-12)


def test_average_ranks_by_hand():
    assert average_ranks(np.array([10.0, 20.0, 10.0, 5.0])).tolist() == [2.5, 4.0, 2.5, 1.0]


def test_compare_by_hand():
    model = np.array([1.0, -2.0, -1.0, 3.0, 2.0])
    ref = np.array([2.0, -1.0, 1.0, 5.0, -3.0])
    m = compare(model, ref)
    assert m["n"] == 5
    assert m["sign_agreement"] == pytest.approx(3 / 5)  # days 0, 1, 3 agree
    assert m["negative_precision"] == pytest.approx(1 / 2)  # predicted negative: days 1, 2; right: day 1
    assert m["negative_recall"] == pytest.approx(1 / 2)  # negative: days 1, 4; found: day 1
    # ranks model [2,5,... ] vs ref: rho computed by the textbook formula (no ties)
    rm, rr = np.array([3, 1, 2, 5, 4]), np.array([4, 2, 3, 5, 1])
    assert m["spearman"] == pytest.approx(1 - 6 * ((rm - rr) ** 2).sum() / (5 * 24))


def test_compare_without_negative_days_has_no_precision():
    m = compare(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]))
    assert m["negative_precision"] is None and m["negative_recall"] is None
    assert m["sign_agreement"] == 1.0


def test_drawdown_feature_by_hand():
    c = np.array([100.0, 110.0, 99.0, 120.0, 60.0])
    assert drawdown_feature(c, window=2).tolist() == pytest.approx([0.0, 0.0, -0.1, 0.0, -0.5])
    assert drawdown_feature(c, window=60)[4] == pytest.approx(-0.5)


def _small_reference(tmp_path: Path, rows: int = 320, close_name: str = "px") -> Path:
    lines = REFERENCE.read_text().splitlines()
    body = lines[1:rows + 1]
    out = tmp_path / "ref.csv"
    out.write_text(f"date,{close_name},gex\n" + "\n".join(body) + "\n")
    return out


def test_validate_json_on_a_small_reference(tmp_path):
    ref = _small_reference(tmp_path)
    r = run_cli(["validate", "--reference", str(ref), "--json", "--calibrate-until", "2011-12-30"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("n", "spearman", "sign_agreement", "negative_precision", "negative_recall"):
        assert key in out
    held_dates = [line.split(",")[0] for line in ref.read_text().splitlines()[1:] if line.split(",")[0] > "2011-12-30"]
    assert out["n"] == len(held_dates)
    assert out["held_out"] == f"{held_dates[0]}..{held_dates[-1]}"
    assert out["in_sample"]["n"] == 320 - len(held_dates) - 60  # 60 warm-up sessions left out
    assert out["close_column"] == "px" and out["calibrated_until"] == "2011-12-30"
    assert -1.0 <= out["spearman"] <= 1.0 and 0.0 <= out["sign_agreement"] <= 1.0


def test_validate_text_output(tmp_path):
    ref = _small_reference(tmp_path)
    r = run_cli(["validate", "--reference", str(ref), "--calibrate-until", "2011-12-30"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Spearman rank correlation" in r.stdout and "held out" in r.stdout
    assert "60-day drawdown" in r.stdout
    assert "per calendar year" in r.stdout and "2012      held out" in r.stdout
    assert "cross-validation:" in r.stdout and "2011-2012 fold" in r.stdout


def _sessions_per_year(path: Path, skip: int = 60) -> dict[int, int]:
    """Rows per calendar year after the warm-up, counted from the file's text (not by the code under test)."""
    years = [int(line[:4]) for line in path.read_text().splitlines()[1 + skip:]]
    return {y: years.count(y) for y in sorted(set(years))}


def test_validate_on_the_reference_reproduces_the_calibration_report(tmp_path):
    """The done-means command: `validate --reference spx_gex_2011_2022.csv --json` prints by_year."""
    r = run_cli(["validate", "--reference", str(REFERENCE), "--json"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["calibrated_until"] == "2022-12-31"
    assert out["held_out"] is None and out["n"] == 0  # the defaults saw every year of the file
    ins = out["in_sample"]
    assert ins["span"] == "2011-07-27..2022-12-30" and ins["n"] == 2878
    assert round(ins["spearman"], 3) == REPORTED_IN_SAMPLE_SPEARMAN
    assert round(ins["sign_agreement"], 3) == REPORTED_IN_SAMPLE_SIGN
    assert round(ins["baseline_drawdown_60d_spearman"], 3) == REPORTED_BASELINE_SPEARMAN
    assert ins["spearman"] > ins["baseline_drawdown_60d_spearman"] + 0.1
    assert ins["level_ratio"] == pytest.approx(1.0, abs=0.002)  # flow_scale: the reference's median level
    # every year in sample, labelled so, with the calibration log's per-year Spearmans
    assert [(y["year"], y["part"], y["n"]) for y in out["by_year"]] == [
        (y, "in_sample", n) for y, n in _sessions_per_year(REFERENCE).items()]
    assert {y["year"]: round(y["spearman"], 3) for y in out["by_year"]} == REPORTED_IN_SAMPLE_BY_YEAR
    assert any("cross_validation" in note for note in out["notes"])


def test_validate_cross_validation_reproduces_the_benchmark():
    """Each year scored with the parameters fitted without it (engine/folds.py) gives what
    benchmarks/crossvalidate_chain_model.py recorded when it fitted them (over the whole file;
    validate runs each fold over its span and warm-up only, so this also holds that cut to the
    whole-file values)."""
    from gexhistory.pipeline.validate import validate
    from gexhistory.sources.reference import read_reference

    bench = json.loads((REPO / "benchmarks" / "results" / "crossvalidation_edges.json").read_text())
    cv = validate(read_reference(REFERENCE))["cross_validation"]
    keys = ("n", "spearman", "sign_agreement", "negative_precision", "negative_recall", "level_ratio")
    assert [f["held_out_years"] for f in cv["folds"]] == [f["held_out"] for f in bench["folds"]]
    for ours, theirs in zip(cv["folds"], bench["folds"]):
        assert ours["parameters"] == theirs["params"]
        for k in keys:
            assert ours[k] == pytest.approx(theirs["held_out_metrics"][k], rel=1e-9), (ours["held_out_years"], k)
    assert [(y["year"], y["part"]) for y in cv["by_year"]] == [(y, "out_of_fold") for y in range(2011, 2023)]
    for y in cv["by_year"]:
        for k in keys:
            assert y[k] == pytest.approx(bench["out_of_fold"]["by_year"][str(y["year"])][k], rel=1e-9)
    for k in keys:
        assert cv["pooled"][k] == pytest.approx(bench["out_of_fold"]["pooled"][k], rel=1e-9)


def test_by_year_splits_held_out_and_in_sample_and_matches_scipy(tmp_path):
    """A --calibrate-until inside a year cuts it in two entries; each entry's metrics are those of
    its own sessions, recomputed here with scipy from the modelled series."""
    from scipy.stats import spearmanr

    from gexhistory.pipeline.validate import modelled_close_gex, validate
    from gexhistory.sources.reference import read_reference

    ref = read_reference(_small_reference(tmp_path, rows=560))  # 2011-05-02..2013-07
    out = validate(ref, dt.date(2012, 6, 29))
    assert [(y["year"], y["part"]) for y in out["by_year"]] == [
        (2011, "in_sample"), (2012, "in_sample"), (2012, "held_out"), (2013, "held_out")]
    assert out["by_year"][1]["n"] + out["by_year"][2]["n"] == _sessions_per_year(Path(ref.path))[2012]
    assert out["by_year"][1]["span"] == "2012-01-03..2012-06-29"
    assert out["by_year"][2]["span"] == "2012-07-02..2012-12-31"
    model = modelled_close_gex("SPX", ref.dates, ref.close)
    for entry in out["by_year"]:
        a, b = (dt.date.fromisoformat(x) for x in entry["span"].split(".."))
        sel = np.array([a <= d <= b for d in ref.dates]) & (np.arange(len(ref.dates)) >= 60)
        assert entry["n"] == sel.sum()
        assert entry["spearman"] == pytest.approx(spearmanr(model[sel], ref.gex[sel]).statistic, abs=1e-12)
        assert entry["sign_agreement"] == pytest.approx(np.mean(np.sign(model[sel]) == np.sign(ref.gex[sel])))
    held = [y for y in out["by_year"] if y["part"] == "held_out"]
    assert sum(y["n"] for y in held) == out["n"]
    assert any("were seen by that fit" in note for note in out["notes"])  # honest about the defaults
    assert out["cross_validation"]["by_year"][0]["year"] == 2011  # the 2011-2012 and 2013-2014 folds


def _dix_shaped(src: Path, out: Path, rows: int | None = None, dix=lambda i: 0.40 + 0.01 * (i % 7)) -> Path:
    """The reference rewritten as SqueezeMetrics publishes DIX.csv: date,price,dix,gex (the dix
    values are placeholders: the shared data has none, and validate must not read them)."""
    lines = src.read_text().splitlines()[1:]
    lines = lines[:rows] if rows else lines
    body = [f"{d},{c},{dix(i)},{g}" for i, (d, c, g) in enumerate(line.split(",") for line in lines)]
    out.write_text("date,price,dix,gex\n" + "\n".join(body) + "\n")
    return out


def test_dix_csv_as_published_validates_as_it_is(tmp_path):
    """tests/data/dix_sample.csv has DIX.csv's layout; validate reads `price` as the close, ignores
    `dix` by name, and scores exactly what the same rows in the shared layout score."""
    sample = DATA / "dix_sample.csv"
    assert sample.read_text().splitlines()[0] == "date,price,dix,gex"
    r = run_cli(["validate", "--reference", str(sample), "--json"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    dix = json.loads(r.stdout)
    assert dix["close_column"] == "price" and dix["ignored_columns"] == ["dix"]
    rows = len(sample.read_text().splitlines()) - 1
    shared = json.loads(run_cli(["validate", "--reference", str(_small_reference(tmp_path, rows=rows)), "--json"],
                                cwd=tmp_path).stdout)
    for key in ("reference", "close_column", "ignored_columns"):
        dix.pop(key), shared.pop(key)
    assert dix == shared and dix["in_sample"]["n"] == rows - 60
    r = run_cli(["validate", "--reference", str(sample)], cwd=tmp_path)
    assert r.returncode == 0 and "close: price; ignored columns: dix" in r.stdout


def test_dix_column_values_do_not_matter():
    """The whole 2011-2022 series in DIX.csv's layout, with two different dix columns: identical
    figures, equal to the shared file's."""
    import tempfile

    from gexhistory.pipeline.validate import validate
    from gexhistory.sources.reference import read_reference

    with tempfile.TemporaryDirectory() as tmp:
        a = read_reference(_dix_shaped(REFERENCE, Path(tmp) / "DIX.csv"))
        b = read_reference(_dix_shaped(REFERENCE, Path(tmp) / "DIX2.csv", dix=lambda i: -1e6 * i))
    base = read_reference(REFERENCE)
    assert a.dates == base.dates and (a.close == base.close).all() and (a.gex == base.gex).all()
    assert (b.close == base.close).all() and (b.gex == base.gex).all()
    ours = validate(a, cross_validate=False)
    assert ours["in_sample"] == validate(base, cross_validate=False)["in_sample"]
    assert ours["by_year"] == validate(b, cross_validate=False)["by_year"]


def test_modelled_gex_has_the_reference_level():
    """flow_scale was set so that the model's median |GEX| over 2011-2022 is the reference's
    (benchmarks/results/LEVEL.md); the median ratio is recomputed here from the file itself, and the
    rounding of flow_scale to 4 decimals allows 0.1%. Year by year the level stays within a factor 1.5."""
    from gexhistory.engine.validation import WARMUP_SESSIONS
    from gexhistory.pipeline.validate import modelled_close_gex
    from gexhistory.sources.reference import read_reference

    ref = read_reference(REFERENCE)
    model = modelled_close_gex("SPX", ref.dates, ref.close)[WARMUP_SESSIONS:]
    gex = ref.gex[WARMUP_SESSIONS:]
    assert np.median(np.abs(model)) / np.median(np.abs(gex)) == pytest.approx(1.0, abs=0.002)
    years = np.array([d.year for d in ref.dates[WARMUP_SESSIONS:]])
    for y in np.unique(years):
        ratio = np.median(np.abs(model[years == y])) / np.median(np.abs(gex[years == y]))
        assert 1 / 1.5 < ratio < 1.5, (y, ratio)


def test_signal_thresholds_are_scaled_to_the_reference_median():
    """engine/signals.GEX_REFERENCE is the median |GEX| of the whole reference file (the span the
    model's level was calibrated on), recomputed here from the file's text."""
    from gexhistory.engine.signals import GEX_REFERENCE

    gex = [abs(float(line.rsplit(",", 1)[1])) for line in REFERENCE.read_text().splitlines()[1:]]
    assert GEX_REFERENCE == pytest.approx(float(np.median(gex)), abs=0.005e9)  # rounded to $0.01B


@pytest.mark.parametrize("content, expect", [
    ("date,close\n2020-01-02,1\n", "header must have columns date, a close column (price or close) and gex"),
    ("date,a,b,gex\n2020-01-02,1,2,3\n", "cannot tell which column is the close: name it price or close"),
    ("date,price,close,gex\n2020-01-02,1,2,3\n", "more than one close column (price, close)"),
    ("date,spx_close,ndx_close,gex\n2020-01-02,1,2,3\n", "more than one close column (spx_close, ndx_close)"),
    ("date,price,gex,gex\n2020-01-02,1,2,3\n", "column gex appears more than once"),
    ("date,close,gex\n2020-01-02,abc,1\n", ":2: bad date or number"),
    ("date,close,gex\n2020-13-02,1,1\n", ":2: bad date or number"),
    ("date,close,gex\n2020-01-03,1,1\n2020-01-02,1,1\n", ":3: dates must be strictly increasing"),
    ("date,close,gex\n2020-01-02,1\n", ":2: expected 3 fields"),
    ("date,close,gex\n2020-01-02,-5,1\n", ":2: close must be a positive number"),
    ("date,close,gex\n2020-01-02,1,inf\n", ":2: close must be a positive number and gex finite"),
    ("date,close,gex\n2020-01-02,1,1e\n", ":2: bad date or number"),
    ("date,close,gex\n" + "".join(line[:11] + "1,\n" for line in REFERENCE.read_text().splitlines()[1:81]),
     "0 sessions with a gex value after the 60 warm-up sessions; at least 10 are needed"),
    ("", "is empty"),
    ("date,close,gex\n2020-01-02,1,1\n", "at least 70 are needed"),
])
def test_bad_reference_files_exit_2_with_one_line(tmp_path, content, expect):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    r = run_cli(["validate", "--reference", str(bad)], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0]


def test_missing_reference_and_bad_date_option_exit_2(tmp_path):
    r = run_cli(["validate", "--reference", str(tmp_path / "nope.csv")], cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = run_cli(["validate", "--reference", str(REFERENCE), "--calibrate-until", "2014-31-12"], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--calibrate-until" in r.stderr


def _validate_json(path: Path, cwd: Path) -> dict:
    r = run_cli(["validate", "--reference", str(path), "--json"], cwd=cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_download_with_holes_scores_what_it_can(tmp_path):
    """Holes a published series may have are listed, not refused: a row dated on a day the NYSE was
    closed and a row without a close are left out, a session without a GEX value stays in the price path
    unscored. The figures are those of the file without those rows' GEX: the same as a file that never
    had them (a chain depends only on the closes up to its date)."""
    lines = _dix_shaped(REFERENCE, tmp_path / "full.csv", rows=320).read_text().splitlines()
    at = {line.split(",", 1)[0]: k for k, line in enumerate(lines)}
    holes = list(lines)
    k = at["2011-07-08"]  # a Friday: a Saturday row after it stays in date order
    holes.insert(k + 1, "2011-07-09," + lines[k].split(",", 1)[1])
    holes[-1] = holes[-1].rsplit(",", 1)[0] + ","  # the last session's GEX not published (yet)
    holed = tmp_path / "DIX.csv"
    holed.write_text("\n".join(holes) + "\n")
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join(lines[:-1]) + "\n")  # the header and the first 319 rows

    got, want = _validate_json(holed, tmp_path), _validate_json(clean, tmp_path)
    assert got["reference_gaps"] == {"no_gex": [lines[-1][:10]], "closed_day": ["2011-07-09"]}
    assert got["in_sample"]["n"] == 320 - 1 - 60 and got["in_sample"] == want["in_sample"]
    assert got["by_year"] == want["by_year"] and got["cross_validation"] == want["cross_validation"]
    assert want["reference_gaps"] == {}
    text = run_cli(["validate", "--reference", str(holed)], cwd=tmp_path).stdout
    assert f"note: 1 row without a gex value: in the price path, not scored ({lines[-1][:10]})" in text
    assert "note: 1 row on days the NYSE was closed: left out (2011-07-09)" in text

    # an export with a row for every calendar day (weekends and holidays carrying the session before)
    every_day, day = [lines[0]], dt.date.fromisoformat(lines[1][:10])
    rows_by_day = {line[:10]: line for line in lines[1:]}
    while day <= dt.date.fromisoformat(lines[-1][:10]):
        every_day.append(day.isoformat() + rows_by_day.get(day.isoformat(), every_day[-1])[10:])
        day += dt.timedelta(days=1)
    (tmp_path / "every_day.csv").write_text("\n".join(every_day) + "\n")
    filled, full = _validate_json(tmp_path / "every_day.csv", tmp_path), _validate_json(tmp_path / "full.csv", tmp_path)
    assert len(filled["reference_gaps"]["closed_day"]) == len(every_day) - len(lines)
    assert list(filled["reference_gaps"]) == ["closed_day"]
    assert {k: v for k, v in filled.items() if k not in ("reference", "reference_gaps", "notes")} == \
        {k: v for k, v in full.items() if k not in ("reference", "reference_gaps", "notes")}

    # a session in the middle without GEX (written as NaN) is one session fewer, nothing else moves
    middle = list(lines)
    j = at["2012-03-01"]
    middle[j] = middle[j].rsplit(",", 1)[0] + ",NaN"
    (tmp_path / "nan.csv").write_text("\n".join(middle) + "\n")
    nan = _validate_json(tmp_path / "nan.csv", tmp_path)
    assert nan["reference_gaps"] == {"no_gex": ["2012-03-01"]}
    assert nan["in_sample"]["n"] == full["in_sample"]["n"] - 1
    assert [y["n"] for y in nan["by_year"]] == [full["by_year"][0]["n"], full["by_year"][1]["n"] - 1]
    from scipy.stats import spearmanr

    from gexhistory.pipeline.validate import modelled_close_gex
    from gexhistory.sources.reference import read_reference

    ref = read_reference(tmp_path / "full.csv")  # the closes of every row: the same path as nan.csv's
    model = modelled_close_gex("SPX", ref.dates, ref.close)
    scored = np.arange(len(ref.dates)) >= 60
    scored[ref.dates.index(dt.date(2012, 3, 1))] = False
    assert nan["in_sample"]["spearman"] == pytest.approx(spearmanr(model[scored], ref.gex[scored])[0], abs=1e-12)

    # a row without a close is left out: the path, and so every chain after it, lacks that session
    no_close = list(lines)
    no_close[j] = "2012-03-01,,0.41," + lines[j].rsplit(",", 1)[1]
    (tmp_path / "noclose.csv").write_text("\n".join(no_close) + "\n")
    skipped = tmp_path / "skipped.csv"
    skipped.write_text("\n".join(lines[:j] + lines[j + 1:]) + "\n")
    a, b = _validate_json(tmp_path / "noclose.csv", tmp_path), _validate_json(skipped, tmp_path)
    assert a["reference_gaps"] == {"no_close": ["2012-03-01"]}
    assert b["reference_gaps"] == {"no_row": ["2012-03-01"]}
    assert a["in_sample"] == b["in_sample"] and a["in_sample"]["n"] == full["in_sample"]["n"] - 1


def test_a_backfill_stores_the_close_gex_validate_computes(db_url, tmp_path):
    """validate's model and a backfill of the same closes give the same close net GEX.

    The setup makes the two chains identical, not merely alike: the same symbol (SPX), the same prices
    (the reference's closes as a close-only bars file, parsed to the same floats), and the same warm-up
    (the backfill's bar request reaches back past the file's first date, so its price path starts on
    the file's first row, as validate's does; a chain never depends on where the path ends). The close
    snapshot of a close-only source is priced at that close, at the session's close time: validate's
    spot and time. Both then go through model_chains.chain_model and compute_gex.
    """
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.pipeline.validate import modelled_close_gex
    from gexhistory.sources.reference import read_reference
    from helpers import rows

    lines = REFERENCE.read_text().splitlines()[1:201]
    ref_path, bars_path = tmp_path / "ref.csv", tmp_path / "spx.csv"
    ref_path.write_text("date,spx_close,gex\n" + "\n".join(lines) + "\n")
    bars_path.write_text("date,close\n" + "\n".join(",".join(x.split(",")[:2]) for x in lines) + "\n")
    ref = read_reference(ref_path)
    start, end = ref.dates[-15], ref.dates[-1]
    run_backfill(BackfillOptions(["SPX"], start, end, source="csv", bars=str(bars_path), db=db_url))
    stored = rows(db_url, "SELECT timestamp, spot_price, net_gex FROM gex_history WHERE symbol = 'SPX' ORDER BY timestamp")
    assert [r[0][:10] for r in stored] == [d.isoformat() for d in ref.dates[-15:]]  # one close snapshot each
    model = modelled_close_gex("SPX", ref.dates, ref.close)[-15:]
    assert [r[1] for r in stored] == ref.close[-15:].tolist()
    np.testing.assert_allclose([r[2] for r in stored], model, rtol=1e-9, atol=0)  # equal, in fact: same code

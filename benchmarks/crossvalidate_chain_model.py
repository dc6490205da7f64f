"""Cross-validate the chain model's calibration inside the reference data (2011-2022).

    python benchmarks/crossvalidate_chain_model.py [--reference FILE] [--folds 2011-2012,2013-2014,...]
                                                   [--log benchmarks/results/crossvalidation.log]
                                                   [--json benchmarks/results/crossvalidation.json]
                                                   [--sign-weight 0.25] [--stages-from JSON]

Each fold holds out a span of calendar years: the parameters are fitted, exactly as
benchmarks/calibrate_chain_model.py fits the defaults (both search stages from V1, stage 3, then the
level), on every other usable session of the file, and then scored on the held-out years only. The
held-out GEX is never read by the fit (calibrate_chain_model.Fit keeps only the fitted sessions'
values); --sign-weight is the objective's weight on sign agreement, as in calibrate_chain_model.py
(default 0.25). Default
folds: the six two-year spans 2011-2012 ... 2021-2022, so each year is held out once.

With --stages-from (an earlier run's --json), each fold takes its stage 1-2 result from that record
instead of searching again (the search is deterministic) and runs stage 3 and the level: how the
stage-3 figures (benchmarks/results/crossvalidation_edges.*) were made from crossvalidation.json.

Printed (and written to --log and --json): per fold, the held-out Spearman, sign agreement and
negative-GEX precision/recall, with the same for each calendar year of the fold, and the level ratio
median |model| / median |reference|; then every year out of fold, the pooled out-of-fold figures,
and the 60-day drawdown baseline on the same sessions. About 3 minutes per fold on one core (1,162 s for
the six at nice -n 19 on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

from calibrate_chain_model import (  # noqa: E402
    DEFAULT_REFERENCE,
    SIGN_WEIGHT,
    Fit,
    calibrate,
    searched_params,
    usable,
    year_lines,
)
from gexhistory.engine.validation import drawdown_feature, spearman  # noqa: E402
from gexhistory.engine.yearly import by_year, metrics, years_of  # noqa: E402
from gexhistory.pipeline.validate import modelled_close_gex  # noqa: E402
from gexhistory.sources.reference import read_reference  # noqa: E402

FOLDS = "2011-2012,2013-2014,2015-2016,2017-2018,2019-2020,2021-2022"
FIGURES = ("n", "spearman", "sign_agreement", "negative_precision", "negative_recall", "level_ratio")


def parse_folds(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        out.append((int(a), int(b or a)))
    return out


def _line(label: str, m: dict) -> str:
    p, r = m["negative_precision"], m["negative_recall"]
    return (f"{label}: n={m['n']} spearman={m['spearman'] or float('nan'):.3f} sign={m['sign_agreement']:.3f} "
            f"neg precision={'-' if p is None else f'{p:.2f}'} recall={'-' if r is None else f'{r:.2f}'} "
            f"level={m['level_ratio'] or float('nan'):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default=str(DEFAULT_REFERENCE))
    ap.add_argument("--folds", default=FOLDS, help="comma-separated held-out year spans, e.g. 2019-2020,2021")
    ap.add_argument("--log", default=str(REPO / "benchmarks/results/crossvalidation.log"))
    ap.add_argument("--json", default=str(REPO / "benchmarks/results/crossvalidation.json"))
    ap.add_argument("--sign-weight", type=float, default=SIGN_WEIGHT,
                    help=f"the objective's weight on sign agreement (default {SIGN_WEIGHT})")
    ap.add_argument("--stages-from", help="an earlier run's JSON record: each fold takes its stage 1-2 result "
                                          "from it instead of searching again, then runs stage 3")
    args = ap.parse_args()
    recorded = ({f["held_out"]: searched_params(f) for f in json.loads(Path(args.stages_from).read_text())["folds"]}
                if args.stages_from else {})
    ref = read_reference(args.reference)
    folds = parse_folds(args.folds)
    missing = [f"{a}-{b}" for a, b in folds if args.stages_from and f"{a}-{b}" not in recorded]
    if missing:
        ap.error(f"--stages-from {args.stages_from} has no fold {', '.join(missing)}")
    years, ok = years_of(ref.dates), usable(ref)
    log_path = Path(args.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    summary: list[str] = []

    with log_path.open("w") as fh:
        def log(line: str, keep: bool = False) -> None:
            print(line, flush=True)
            fh.write(line + "\n")
            fh.flush()
            if keep:
                summary.append(line)

        log(f"reference {ref.path}: {ref.dates[0]}..{ref.dates[-1]}, {len(ref.dates)} sessions "
            f"(first {int((~ok).sum())} warm-up); folds {args.folds}; objective sign weight {args.sign_weight:g}")
        oof = np.full(len(ref.dates), np.nan)  # out-of-fold modelled GEX
        out = {"reference": ref.path, "sign_weight": args.sign_weight, "folds": []}
        t_all = time.perf_counter()
        for a, b in folds:
            held = ok & (years >= a) & (years <= b)
            fit = Fit(ref, ok & ~held, args.sign_weight)
            log(f"\n######## fold: hold out {a}-{b} ({int(held.sum())} sessions), fit on the other "
                f"{int(fit.mask.sum())}")
            t0 = time.perf_counter()
            params = calibrate(fit, log, recorded.get(f"{a}-{b}"))
            model = modelled_close_gex("SPX", ref.dates, ref.close, params)  # held-out GEX read only now
            oof[held] = model[held]
            fold = {"held_out": f"{a}-{b}", "params": params.as_dict(), "seconds": round(time.perf_counter() - t0),
                    "held_out_metrics": metrics(model[held], ref.gex[held]),
                    "in_sample_metrics": metrics(model[fit.mask], ref.gex[fit.mask]),
                    "by_year": by_year(ref.dates, model, ref.gex, held)}
            out["folds"].append(fold)
            log(_line(f"fold {a}-{b} held out", fold["held_out_metrics"]), keep=True)
            log(_line(f"fold {a}-{b} in sample", fold["in_sample_metrics"]), keep=True)
            for line in year_lines(fold["by_year"]):
                log(line, keep=True)
            log(f"fold took {fold['seconds']}s ({fit.runs} model runs)")

        scored = ok & np.isfinite(oof)
        base = drawdown_feature(ref.close)
        out["out_of_fold"] = {"pooled": metrics(oof[scored], ref.gex[scored]),
                              "mean_year_spearman": None,
                              "baseline_drawdown_60d_spearman": spearman(base[scored], ref.gex[scored]),
                              "by_year": by_year(ref.dates, oof, ref.gex, scored)}
        year_rhos = [m["spearman"] for m in out["out_of_fold"]["by_year"].values() if m["spearman"] is not None]
        out["out_of_fold"]["mean_year_spearman"] = float(np.mean(year_rhos)) if year_rhos else None
        out["out_of_fold"]["baseline_by_year"] = {
            int(y): spearman(base[scored & (years == y)], ref.gex[scored & (years == y)])
            for y in np.unique(years[scored]).tolist()}
        log("\n######## summary", keep=False)
        for line in summary:
            log(line)
        log("\nevery year out of fold (each scored by the fit that did not see it):")
        for line in year_lines(out["out_of_fold"]["by_year"]):
            log(line)
        log(_line("pooled out of fold", out["out_of_fold"]["pooled"]))
        log(f"mean of the per-year Spearmans: {out['out_of_fold']['mean_year_spearman']:.3f}; "
            f"lowest year: {min(year_rhos):.3f}; 60-day drawdown baseline, pooled: "
            f"{out['out_of_fold']['baseline_drawdown_60d_spearman']:.3f}, by year: "
            + " ".join(f"{y}:{r:.2f}" for y, r in out["out_of_fold"]["baseline_by_year"].items()))
        log(f"total {time.perf_counter() - t_all:.0f}s")
    Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

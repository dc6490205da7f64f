"""The cross-validation of the chain model's calibration, as parameters: for each two-year span of
2011-2022, the ModelParams fitted on every other year of the reference (SqueezeMetrics SPX GEX).

The defaults (engine/params.py) were fitted on all of 2011-05..2022-12, so no year of the shared
reference file is out of sample for them. These sets were each fitted without one span, exactly as
the defaults were (benchmarks/crossvalidate_chain_model.py: both search stages from the same start,
then flow_scale for the level, rounded to 4 decimals), and are copied from its record,
benchmarks/results/crossvalidation.json. `gexhistory validate` scores each year of a reference file
that falls in a span with that span's set: a year judged by parameters that never saw its GEX.

A change of the model that moves the defaults invalidates these too: rerun the cross-validation and
copy its parameters here (tests/test_validate.py checks that validate reproduces its figures).
"""

from __future__ import annotations

import dataclasses

from gexhistory.engine.params import ModelParams

CROSSVALIDATION_COMMAND = "python benchmarks/crossvalidate_chain_model.py"

# The fitted parameters, in this order (the unfitted ones are ModelParams' defaults).
FITTED = ("oi_turnover", "activity_elasticity", "dte_decay_days", "dte_decay_days_midweek", "monthly_weight",
          "put_call_volume", "put_call_vol_elasticity", "call_center_sd", "put_center_sd", "call_width_sd",
          "put_width_sd", "iv_premium", "skew_slope", "flow_scale")
# (first year, last year held out, the values fitted without them, in FITTED's order)
FOLDS = (
    (2011, 2012, (   0.0149,   0.6465,  79.9931,  45.4583,    5.041,   0.7039,   0.0203,
                    0.1874,  -0.8062,   1.2457,   0.7616,   1.4046,  -0.3674,    0.158)),
    (2013, 2014, (   0.0173,   0.7248,  77.9287,  48.7153,   5.1956,   1.0384,   0.1067,
                      -0.2,  -1.2924,   1.1685,     0.78,   1.5094,  -0.3324,   0.1861)),
    (2015, 2016, (   0.0208,   0.5991,     91.9,  47.8165,   5.7051,    0.974,   0.0957,
                    0.1354,  -1.2029,   1.0898,   0.7552,   1.5997,  -0.2535,   0.1658)),
    (2017, 2018, (   0.0098,   0.6428, 103.8699,  38.9195,     9.47,   0.4604,  -0.0409,
                       1.2,   -2.247,   0.5457,   1.0177,   0.9711,   -0.342,    0.036)),
    (2019, 2020, (   0.0157,   0.6436,  77.5895,  35.7391,    3.536,   0.8525,   0.1043,
                     0.821,  -1.3945,   1.0828,   1.3962,   1.2929,  -0.2887,   0.1303)),
    (2021, 2022, (    0.019,   0.9768, 109.7678,  68.9589,   7.8664,   0.8653,   0.0995,
                       1.2,  -1.5649,   0.9831,    1.159,      1.6,   -0.012,   0.1566)),
)


def fold_params() -> list[tuple[int, int, ModelParams]]:
    """[(first year, last year, the parameters fitted without those years)], in year order."""
    return [(a, b, dataclasses.replace(ModelParams(), **dict(zip(FITTED, values, strict=True))))
            for a, b, values in FOLDS]

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
    (2011, 2012, (   0.012,   0.7695,    75.96,  43.2819,   4.1898,   0.8688,   0.1463,
                   0.9472,  -2.0516,   0.6667,   0.8765,   1.5343,  -0.3574,   0.0712)),
    (2013, 2014, (  0.0186,   0.7655,     87.5,  50.3716,   5.2969,      0.8,   0.1477,
                   0.4266,  -1.0679,   1.0145,   0.5293,   1.3742,   -0.356,   0.0896)),
    (2015, 2016, (  0.0241,    0.799,  94.1797,  50.3218,   4.7874,   0.5753,   0.1819,
                   0.9276,  -1.2331,    1.032,   0.6043,   1.4546,  -0.3518,   0.0869)),
    (2017, 2018, (  0.0129,   0.6167,  78.0204,  52.9583,   4.6556,   1.0669,   0.0777,
                   0.5443,   -1.515,   0.7999,   0.7833,   1.4379,  -0.2869,   0.0753)),
    (2019, 2020, (  0.0195,   0.6471, 115.1797,  44.9051,   4.5769,   0.6537,    0.219,
                   1.0933,  -2.3518,   0.5345,   1.0091,   1.0906,  -0.3352,   0.0432)),
    (2021, 2022, (  0.0268,   0.8768, 109.7678,  76.6089,   8.3064,   0.8313,   0.0995,
                   1.1566,  -1.4959,   1.1151,    1.108,    1.523,   -0.012,   0.1318)),
)


def fold_params() -> list[tuple[int, int, ModelParams]]:
    """[(first year, last year, the parameters fitted without those years)], in year order."""
    return [(a, b, dataclasses.replace(ModelParams(), **dict(zip(FITTED, values, strict=True))))
            for a, b, values in FOLDS]

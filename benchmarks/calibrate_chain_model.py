"""Calibrate the chain model's free parameters on the reference GEX series (SqueezeMetrics, SPX).

    python benchmarks/calibrate_chain_model.py [--reference FILE] [--until 2022-12-31] [--json OUT]
                                               [--sign-weight 0.25] [--stages-from JSON]

The ModelParams defaults are the result of this command on 2011-05..2022-12 (logs:
benchmarks/results/calibration_2011_2022.log for the search, calibration_2011_2022_edges.log for stage
3, run with --stages-from calibration_2011_2022.json). benchmarks/crossvalidate_chain_model.py runs the same
fit with two calendar years held out at a time and scores the held-out years (the figures of the
README); both use `calibrate` below, so a fold is fitted exactly as the defaults were.

The fit, from the first uncalibrated model's values (V1, plus neutral values for the era
parameters added later) whatever the data:
- stage 1: 60 seeded random trials (seed 7) within SPACE_1 then one round of coordinate refinement;
- stage 2: 160 trials (seed 11) within the wider SPACE_2 from stage 1's point, two refinement rounds;
  stages 1 and 2 run with strikes_added_within = 0 (V1), edges extended only once the index trades
  through them;
- stage 3: strikes_added_within chosen from D_GRID with the stage 2 values fixed, by the same objective
  on the same sessions (the smaller distance on a tie): how near an edge the index comes before Cboe's
  added strikes take the new contracts past it (ModelParams.strikes_added_within). Stage 3 was added on
  2026-12-06 (sixth session): fitted jointly with the others, the distance 0.10 failed the
  cross-validation (below), chosen after them it passes it;
- the level: flow_scale is set so that the median |modelled GEX| equals the reference's median |GEX|
  on the fitted sessions (GEX is proportional to open interest, so this moves no rank and no sign).
Objective: 0.5 x Spearman over all fitted sessions + 0.5 x the mean of the per-calendar-year
Spearmans + 0.25 x sign agreement (ranks within each year matter as much as across years; a model
that is negative on the wrong days is useless to the regime tables). Every trial is printed. The sign
agreement's weight is --sign-weight (SIGN_WEIGHT, 0.25, the weight of every fit behind the defaults).

Tried and left out of the model, because they lowered the Spearman over 2011-2022 in
one-at-a-time runs (with the 2011-2014 parameters, and the overwriting again with the 2011-2022
ones): systematic call overwriting as blocks of calls written 0-1 sigma above spot at each monthly
roll and held to expiry (constant, or growing from mid-2019 with the buy-write and premium-income
funds: it flattens 2022's negative days and does not give 2021's build-up into each monthly
expiry), and contract counts growing with Cboe's yearly SPX volume (the reference's level grew more
slowly than the volume). A joint fit with them was not attempted. A sign weight of 1.0 instead of
0.25 in the objective (Friday monthlies, 60-day window) raised the in-sample sign agreement from 0.943
to 0.956 at a Spearman of 0.866 instead of 0.871, but lowered 2022's from 0.896 to 0.841; it was not
adopted.

Tried on 2026-12-05 and not adopted then (the fourth was adopted on 2026-12-06, below). The rule was: a
change is kept only if, under the six-fold cross-validation, no fold's Spearman falls by more than 0.01
and neither pooled sign agreement nor pooled negative recall falls.
- Implied vol with a longer memory (20-day realised blended with 40- or 60-day): in-sample Spearman
  0.861-0.872 against 0.871, and 2021 worse.
- Open interest that closes faster in an expiry's last sessions: in-sample 2021 fell to 0.56-0.59.
- Standard monthlies expiring on the Saturday after the third Friday before 2015-02 (the OCC/Cboe
  calendar of the time; the reference GEX stays up on monthly-expiry Fridays until January 2015 and drops
  on them from 2015-02-20): in sample, without a refit, Spearman 0.871 -> 0.880, 2013 0.726 -> 0.801 and
  2014 0.782 -> 0.849. Cross-validated with a refit: pooled 0.850, but fold 2017-2018 fell from 0.872 to
  0.855, sign agreement from 0.937 to 0.927 and recall from 0.88 to 0.79.
- The same plus expiries out to 120 days instead of 60 (the reference counts every SPX expiry). Pooled
  out-of-fold Spearman 0.859, sign 0.950, negative precision/recall 0.715/0.855. By fold: 0.910, 0.818,
  0.904, 0.887, 0.828, 0.826; 2013 0.804, 2014 0.860, 2021 0.547. No fold fell, but recall did. The
  window of 120 days was chosen by an in-sample scan, and it changes Conventions.dte_window, so every
  stored GEX would move. ADOPTED on 2026-12-06, re-implemented (chain_model.expiry_moments, and
  dte_window = 120 in both Conventions and ModelParams): the refit and the six folds reproduced every
  figure above. The rule then was: pooled out-of-fold Spearman and sign agreement do not fall, negative
  precision >= 0.70 at recall >= 0.80, no fold's Spearman down by more than 0.01 (none fell; the smallest
  gain, 2011-2012, was +0.0003). Pooled recall fell from 0.875 to 0.855, which the rule above would have
  refused. In sample: Spearman 0.887, sign agreement 0.954, precision/recall 0.73/0.87. The window was
  not refitted inside the folds (it was scanned on all of 2011-2022), so the cross-validation is
  slightly optimistic about it.
- All expiries, to 370 days, on folds 2019-2020 and 2021-2022 only: 0.814 and 0.849, recall 0.72.
In every variant the fitted parameters move by about +-0.02 of Spearman between folds (they are loosely
identified), and nothing lifted 2021 above about 0.67, even fitted in sample.

Tried on 2026-12-06 for issue 19 (2021 out of fold 0.547) and not adopted but for the edges extended
when the index trades through them (d = 0 below, adopted). The rule: pooled out-of-fold
Spearman and sign agreement do not fall, negative precision >= 0.70 at recall >= 0.80 pooled, no fold's
Spearman down by more than 0.01, and 2021 out of fold up.
Diagnosis (the defaults, in sample, 2021 at 0.587): the published GEX of 2021 is the least persistent of
the twelve years (rank autocorrelation 0.68 at one session and 0.18 at five, against 0.72-0.89 and
0.30-0.60 in the others), and its daily changes follow the day's return less (rank correlation 0.54;
0.63-0.83 in the other years but 2020, 0.51). The model's misses are slow ones (21-session moving
averages of the within-year ranks correlate 0.39, what is left 0.68): too high in March (mean rank 0.67
against the reference's 0.28), May and August, too low in January and October. No price feature
explains the residual (|rank correlation| <= 0.21 with 1- to 60-session returns, 5- to 60-session
realised vol, the distance to the 20/60/252-session high or low), nor a lag (lag 0 fits best), nor the
put/call balance (call GEX + k x put GEX, k from 0.6 to 1.5: 0.57-0.60). The build-up into each monthly
expiry is already there (rank correlation with the calendar days to the next monthly: reference -0.22,
model -0.30). What goes wrong in March 2021 is the strike grid: an expiry's strikes are fixed at its
listing, about 60 steps either side of the listing price (+-32% to +-81% of it, as the 0.85% step snaps), and
the part of a session's Gaussian of new contracts that reaches past the grid is piled on its edge
strikes. The quarterlies and monthlies of March-April 2021 were listed in March-April 2020 near the
lows, so after the 75% recovery their top strike sat just above spot: on 2021-03-26 (close 3,975) the
2021-03-31 quarterly's top strike, 4,100, held its largest call line (13,511 contracts), and the
2021-04-16 monthly's, 4,225, held 8,170. Figures below: in-sample Spearman / sign agreement / 2021
over 2011-2022 at the default parameters without a refit unless said (the defaults: 0.887 / 0.954 /
0.587); out of fold, the figures now are pooled 0.859 / 0.950, precision/recall 0.72/0.86, folds
0.910 0.818 0.904 0.887 0.828 0.826, 2021 0.547.
- End-of-quarter expiries at a weekly's share of the flow, KIND_WEIGHT['quarterly'] 1.0 instead of the
  first model's unfitted 2.6: 0.889 / 0.953 / 0.621 (0.5: 0.889 / 0.953 / 0.629; 0: 0.8875 / 0.953 /
  0.639). Refitted: 0.887 / 0.951 / 0.649. Cross-validated (1,570 s): pooled 0.856 / 0.948,
  precision/recall 0.72/0.81; folds 0.917 0.831 0.897 0.903 0.834 0.837; 2021 0.578. Refused: the pooled
  Spearman and sign agreement fell, though every fold but 2015-2016 rose (the pooled figure also ranks
  the folds' sessions against each other).
- New contracts beyond an expiry's grid left out instead of piled on its edge strikes (the Gaussian's
  mass past each edge, in closed form, added to the sum the weights are normalised by; the same, in
  effect, as a grid without edges: Cboe adds strikes as the index moves): 0.888 / 0.944 / 0.751, 2013
  0.855 -> 0.781 and 2022 0.905 -> 0.889; the calls' edges alone 2021 0.750, the puts' alone 0.585; a
  grid of +-95% instead gives 0.894 / 0.946 / 0.757. Refitted: 0.888 / 0.957 / 0.741, 2013 0.772.
  Cross-validated (six folds, 1,688 s): pooled 0.876 / 0.943, precision/recall 0.68/0.86; folds 0.915
  0.803 0.903 0.883 0.823 0.871; 2021 0.729, 2022 0.884, 2013 0.772; mean of the per-year Spearmans 0.865
  (0.853 now), lowest year 0.729. Refused: the pooled sign agreement fell, precision fell under 0.70,
  and fold 2013-2014 fell by 0.015 (2013 0.804 -> 0.772), although the pooled Spearman rose by 0.017.
  In the long rally of 2013 the piles, 11-19% above spot (2013-11-22), seem to stand in for call open
  interest above spot that the model without them lacks: the edge piles are an artefact, but removing
  them first needs that open interest modelled some other way.
- Edges extended as the index moves (branch i19b, ModelParams.strikes_added_within there): Cboe lists
  strikes past an expiry's highest (lowest) one as the index nears it ("new series are generally added
  when the underlying trades through the highest or lowest strike price available", its index option
  specifications). An edge counts as extended from the first close within d (in log) of it, or past it,
  and stays so; from then the Gaussian's mass past it is left out as above (it lands on added strikes the
  fixed grid does not hold), before that it is piled as now (traders take the farthest strike listed).
  In sample, no refit, d = 0 / 0.05 / 0.08 / 0.10 / 0.12 / 0.15: 0.894 / 0.954 / 0.635, 0.898 / 0.954 /
  0.663, 0.902 / 0.955 / 0.699, 0.904 / 0.954 / 0.714, 0.906 / 0.954 / 0.733, 0.905 / 0.953 / 0.748;
  2013 0.855 up to d = 0.10 (0.852 at 0.12, 0.826 at 0.15), precision/recall 0.73/0.88 at 0.10. The same
  test on the current close only (an edge extended while the close is within d, not for good) gave
  about the same (d = 0.09: 0.902 / 0.955 / 0.706; 0.12: 0.905 / 0.954 / 0.732). d = 0.10, refitted (650 s): 0.899 / 0.950 / 0.703,
  2013 0.847, 2011's sign agreement 0.709 (0.773 now); the search ended below the defaults with d = 0.10
  unfitted (objective 1.1251 against 1.1304). Cross-validated (3,257 s): pooled 0.879 / 0.944,
  precision/recall 0.68/0.88; folds 0.914 0.826 0.896 0.903 0.859 0.874; 2021 0.678, 2013 0.835, 2022
  0.908; mean of the per-year Spearmans 0.869. Refused: every fold's Spearman but 2015-2016's (-0.008)
  rose and 2013 rose too, but the pooled sign agreement fell (2014 0.956 -> 0.937, 2015-2016 0.972 ->
  0.952-0.956) and precision fell under 0.70. The 10% was picked by that in-sample scan.
- The same with d = 0, an edge extended from the first close past it, as the specifications say (not
  scanned): no refit 0.894 / 0.954 / 0.635, 2013 0.855, precision/recall 0.73/0.87. Refitted (295 s):
  0.889 / 0.952 / 0.680, 2013 0.804 (the fit is loosely identified: the defaults with d = 0 unfitted
  score higher on the objective, 1.1221 against 1.1182). Cross-validated (2,795 s): pooled 0.864 /
  0.951, precision/recall 0.73/0.84; folds 0.912 0.817 0.898 0.887 0.826 0.847 (largest fall 2015-2016,
  -0.006); 2021 0.600, 2013 0.804, 2022 0.905; mean of the per-year Spearmans 0.856. It passes the rule
  (pooled Spearman 0.8594 -> 0.8639, sign agreement 0.9496 -> 0.9510, precision 0.73 at recall 0.84,
  no fold down by more than 0.01, 2021 up). ADOPTED on 2026-12-06 (ModelParams.strikes_added_within =
  0, set from the specifications, not fitted; the defaults, engine/folds.py and benchmarks/results
  are that refit and that cross-validation). Pooled recall fell from 0.855 to 0.842, which the rule
  allows (>= 0.80). The gain is small next to d = 0.10's, and 2021 stays the weakest year.
- The third-Friday expiries of March, June, September and December at 1.3 or 1.6 times a monthly's
  weight: 0.884 / 0.953 / 0.576 and 0.881 / 0.954 / 0.558.
- A larger short-dated share, dte_decay_days_midweek 10-45 instead of 58: 2021 up to 0.661 (at 10 and
  15), but 2016-2022 down (2022 0.805 at 10); pooled 0.759-0.886.
- Implied vol from 10-session realised vol, or its mean with the 20-session one (or the 5-session one);
  scaled by the 20-session return or by the distance from the 60-session high; pulled toward the
  long-run level (a power 0.6 or 0.8 of rv, or an affine blend) or away from it (power 1.2);
  iv_term_days 20 to 1000: 2021 0.536-0.610, pooled 0.857-0.888.
- Option volume from 5- or 10-session realised vol, or from the day's own move blended in; a put/call
  split tilted by the 20-session return: 2021 0.573-0.599, pooled 0.876-0.886.
- oi_turnover 0.015 / 0.035, monthly_weight 2-7, round_strike_boost 1.0 / 2.5: 2021 0.580-0.594.

Tried on 2026-12-06 for issue 19 (branch i19c) and not adopted: d = 0.10 with more weight on the sign in
the objective (--sign-weight), to keep its Spearman gain without its loss of sign agreement and
precision. Runs on a copy of this tree with ModelParams.strikes_added_within = 0.10 (the defaults
otherwise), at nice -n 19 on the shared machine:
    python benchmarks/calibrate_chain_model.py --sign-weight W --json OUT        (W = 1.0, 0.5, 0.75)
    python benchmarks/crossvalidate_chain_model.py --sign-weight 0.75 --log LOG --json OUT
In sample, refitted, Spearman / sign agreement / negative precision / recall / 2021 / 2013 (the defaults:
0.889 / 0.952 / 0.74 / 0.84 / 0.680 / 0.804; d = 0.10 at the weight 0.25: 0.899 / 0.950, 2021 0.703, 2013
0.847): weight 1.0 (426 s) 0.883 / 0.958 / 0.77 / 0.84 / 0.706 / 0.813; 0.5 (590 s) 0.893 / 0.954 /
0.75 / 0.85 / 0.702 / 0.837; 0.75 (401 s) 0.895 / 0.957 / 0.77 / 0.85 / 0.705 / 0.823. The gate set for
the cross-validation (in sample, sign agreement >= 0.955 and Spearman >= 0.89) was passed by 0.75
only, a weight picked after seeing 1.0 and 0.5. Cross-validated at 0.75 (2,378 s): pooled 0.8625 /
0.9489 (the defaults 0.8639 / 0.9510), precision/recall 0.76/0.75; folds 0.902 0.805 0.865 0.879 0.828
0.873 (-0.010, -0.012, -0.034, -0.008, +0.003, +0.026); 2021 0.676, 2013 0.784, 2015 0.897, 2022 0.893;
mean of the per-year Spearmans 0.852. Refused by every clause of the rule but 2021: the pooled
Spearman and sign agreement fell, recall fell under 0.80 (the model is negative out of fold on 10% of
the sessions, the defaults on 12%: recall 2013 0.00, 2015 0.65 and 2022 0.70 against 1.00, 1.00 and
0.84), and folds 2013-2014 and 2015-2016 fell by more than 0.01. With d = 0.10 the weight on the sign buys sign
agreement in sample mostly: out of fold it rose only from 0.944 (weight 0.25) to 0.949, under the
defaults' 0.951, and the Spearman gain (0.879 at 0.25) is gone; 2021 keeps its gain (0.678 -> 0.676;
the defaults 0.600). Logs of these runs were not kept in benchmarks/results (the defaults' are there).

Tried on 2026-12-06 (sixth session) and not pursued: in-the-money contracts closing faster than the
others (covered-call writers roll a breached call up, protective puts are monetised after a sell-off),
an extra turnover on each session's ITM calls and puts, or on the puts only, from that session's close
(scratch parameters, not kept, screened as benchmarks/screen_chain_model.py does: the defaults
otherwise, no refit, 2011-2022). Calls and puts,
extra 0.01 / 0.03 / 0.08 a session: Spearman 0.891 / 0.892 / 0.889, sign agreement 0.947 / 0.937 /
0.923 (the model turns negative more often), 2021 0.684-0.688. Puts only, 0.01-0.2, ITM at once or
past 5%: Spearman 0.8893-0.8910, sign agreement 0.952-0.954, 2021 0.679-0.680, 2011's sign 0.77-0.83.
Within +-0.003 of the defaults (0.889 / 0.952 / 0.680): too small to be worth a refit and a
cross-validation. Screened the same day, the unfitted constants: skew_curve 0 / 0.06 and iv_long_run
0.16 / 0.20 moved the Spearman by under 0.001. The strike step (step_fraction, 0.0085, then snapped to
1/2.5/5/10/25/50...) moves it most, and not monotonically: 0.003 / 0.004 / 0.005 / 0.006 / 0.007 /
0.012 gave Spearman 0.891 / 0.886 / 0.866 / 0.896 / 0.893 / 0.888 and sign agreement 0.956 / 0.950 /
0.949 / 0.954 / 0.954 / 0.954. Why: the step is snapped to the nice value nearest in ratio, so at
0.0085 an SPX expiry listed above about 1,860 gets 25-point strikes instead of 10, and one listed above
about 4,160 (from April 2021) 50-point strikes instead of 25; round_strike_boost follows the step (its
multiples of two steps: 20s at a 10-point step, 100s at 50). 2021, in sample: 0.680 at 0.0085 (the
switch to 50 inside the year), 0.722 at 0.007 and 0.754 at 0.006 (25 points all year), 0.679 at 0.003
(10 points all year); 2013 0.804 at 0.0085, 0.781-0.784 at the others. Is part of 2021's weakness
this artefact of the grid? A step that is not snapped at all (price x step_fraction, the boost still on
every other strike) says no: at 0.004 / 0.006 / 0.0085 / 0.01 / 0.012 the pooled Spearman is 0.889 at
every one, sign agreement 0.953, 2013 0.781-0.783 and 2021 0.662-0.667. The model does not depend on
the step as such; the snapped steps add a noise of about +-0.03 to single years (and up to -0.5 when
the step is snapped downwards to the nice value below, which puts coarse steps inside 2013-2014: 2013
0.309 at 0.015), and the defaults' 0.0085 is neither lucky nor unlucky pooled (0.889 both ways). No
gain is to be had from the step; 2021's 0.754 at 0.006 is that noise. Not refitted or cross-validated.

Tried on 2026-12-06 (sixth session), against the fit's loose identification: an ensemble per fold,
the fold's found parameters averaged with its K best search trials (benchmarks/results/
crossvalidation.log, parameters as printed there to 3 significant digits; each member's GEX scaled to the
fitted years' median |GEX|, then the mean set to the reference's level there; nothing of the held-out
years read). Averaging chains' GEX is exact for a chain made of the members' contracts at 1/K of their
open interest. Out of fold, pooled Spearman / sign agreement / precision / recall: K = 0 (the found
parameters alone, reproducing the table) 0.864 / 0.951 / 0.73 / 0.84; K = 3 0.868 / 0.943 / 0.67 /
0.88; K = 10 0.863 / 0.949 / 0.71 / 0.86; K = 30 0.868 / 0.939 / 0.66 / 0.85. Fold 2021-2022 rose
(0.847 -> 0.858-0.877), the five others fell (2019-2020 0.826 -> 0.802-0.816). Not adopted: the sign
agreement and precision fall, and the Spearman does not rise.
How much a better level over time could give, in sample (before stage 3): the defaults' GEX rescaled year by year to
the reference's median |GEX| of that year (an oracle that reads every year's reference level) reaches a
pooled Spearman of 0.902 instead of 0.889, quarter by quarter 0.915. The yearly levels are already
within 0.71-1.14 of the reference's (2020 the lowest, 2013 the highest). So the gap to 0.90 out of fold
is mostly the ranks within each year, not the level between years.

After stage 3 was adopted (same day), other constants chosen the same way, after the search, each fold
choosing its value on its own fitted years with engine/folds.py's values fixed (scratch script, not
kept): the quarterlies' flow weight (KIND_WEIGHT, 2.6 / 1.6 / 1.0 / 0.5 / 0; every fold chose 1.6), the
dailies' (0.7 / 0.35 / 1.0 / 1.5), round_strike_boost (1.6 / 1.0 / 1.3 / 2.0 / 2.5) and iv_term_days (60
/ 30 / 120 / 240). Pooled out of fold, against 0.8745 / 0.9510: 0.8750 / 0.9507, 0.8760 / 0.9514,
0.8747 / 0.9514, 0.8753 / 0.9514. Within 0.0015 of each other: noise, not adopted.

Where the rest of the gap lies (seventh session, 2026-12-06, the defaults with stage 3 and engine/folds.py;
scratch scripts, not kept). Out of fold, setting each fold's level from its held-out years' own median
|GEX| (an oracle) lifts the pooled Spearman only from 0.8745 to 0.8802, and year by year to 0.8936: the
level between folds and years costs little, the ranks within each year the rest. Within the years the
model follows the monthly-expiry cycle as the reference does (mean within-year rank by sessions since the
last monthly expiry, 2021: reference 0.30 / 0.51 / 0.32 / 0.38 / 0.48 / 0.66 at 0 / 2 / 4 / 8 / 10 / 12,
model 0.25 / 0.41 / 0.49 / 0.44 / 0.50 / 0.57), and its monthly means track the reference's (correlation
0.73-0.99 by year). What it cannot follow is the reference's day-to-day variation that is not the day's
move: the rank correlation of the reference's daily change with the day's return is 0.66-0.86 in
2012-2019 and 2022 but 0.48 in 2020 and 0.50 in 2021, where the model's stays at 0.78-0.85 (a model
built from the price path alone moves with it); in 2021, 83% of the reference's rank variance lies
within months (38-62% in 2012-2019). Neither a lag (the reference's change against the previous or the
next day's return: |rho| <= 0.15 in every year) nor a floor under the modelled implied vol (0.05 to 0.11:
in sample 0.897 down to 0.890) explains it. That part of 2020-2021 looks like open interest moved by
flows the price path does not show; without the chains themselves, no parameter of this model reaches it.
Each of the six folds' parameter sets (engine/folds.py), scored on all twelve years, gives a pooled
Spearman of 0.886-0.898 (the defaults 0.897) and nearly the same Spearman in every year (within about
0.03; 2013 0.78-0.88) but one: 2021 is 0.74-0.75 under the five sets fitted with it and 0.66 under fold
2021-2022's, the one fitted without it (and without 2022, so with seven months of the every-day era).
Most of the out-of-fold loss against the in-sample figures (0.874 against 0.897) is that one year and
the folds' levels (0.006, above). Put one at a time into fold 2021-2022's set, no other default value
brings 2021 back (0.63-0.71; strikes_added_within 0.12 instead of the fold's own 0.08: 0.71): the set
differs from the defaults as a whole, not in one value. Screened the same day, not adopted: realised vol
as an exponentially weighted average (half-life 5 to 14 sessions) instead of the 20-session window, for
the implied vol, the volume proxy or both (no cliff when a large move leaves the window): in sample
0.892-0.897, no gain without a refit, not pursued. Nor a quarterly collar of the kind the largest
hedged-equity fund resets at each quarter's end (calls sold 4% above spot, puts bought 5% and sold 20%
below, on the next quarter-end expiry, held to it, untouched by oi_turnover), sized in units of a
session's modelled contracts and grown with an approximate history of that fund's assets (2013-2022):
0.05 / 0.1 / 0.2 / 0.4 / 0.8 gave 0.896 / 0.896 / 0.894 / 0.891 / 0.880, 2021 0.738 -> 0.735 at 0.2 and
0.728 at 0.4, 2017 0.853 -> 0.823 / 0.795, 2022 0.896 -> 0.882 / 0.867: worse in every year it touches.
Cross-validated the same day, not adopted: the put skew held to what SPX's has (fold 2021-2022 had fitted
skew_slope = -0.012, no skew at all; a one-month 90% put trades at about 1.3-1.8 times the at-the-money
vol, a slope near -0.3 here), SPACE_1's skew_slope (-0.5, -0.15) instead of (-0.4, 0.0), all six folds
refitted (two processes, 1,064 s for five folds and 220 s for the sixth). Fold 2021-2022 went to the
bound, -0.5. By fold 0.915 0.805 0.904 0.861 0.845 0.879 (now 0.912 0.817 0.898 0.887 0.823 0.867); 2021
0.657 -> 0.711, 2017 0.830 -> 0.799, 2022's sign agreement 0.92 -> 0.845. Pooled 0.8742 / 0.9423,
precision/recall 0.70/0.79 (now 0.8745 / 0.9510, 0.73/0.84): refused, the sign agreement and recall fall
and two folds fall by more than 0.01.
Cross-validated the same day, not adopted: the objective aimed at the target's "no year below 0.75",
0.25 x the lowest fitted year's Spearman added to it (the weight chosen before the run, the sign's; two
processes, 663 s and 631 s for three folds each). By fold 0.921 0.798 0.899 0.877 0.811 0.857; pooled
0.8646 / 0.9382, precision/recall 0.65/0.87, 2021 0.618, 2013 0.769: worse on every count but 2011-2012's
Spearman and the recall. Refused.
Screened the same day: puts closing at another rate than calls (protective puts held longer than
monthly overwrites, or the other way), the puts' oi_turnover x 0.5 / 0.75 / 1.5 / 2: Spearman 0.896-0.897
at every ratio; it only moves the put/call balance, precision/recall 0.67/0.90, 0.70/0.87, 0.80/0.80,
0.84/0.73 (sign agreement 0.943-0.958), as put_call_volume does. Not pursued.

No peeking: the reference GEX of a session outside the fitted ones is never read. The model runs over
the file's whole price series (a session's chain depends only on the prices up to it), and only the
fitted sessions enter the objective and the level. With --until the series is cut at that date, and
the metrics of the sessions after it (if the file has any) are printed once, at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from gexhistory.engine.chain_model import ModelParams  # noqa: E402
from gexhistory.engine.validation import WARMUP_SESSIONS, compare, spearman  # noqa: E402
from gexhistory.engine.yearly import by_year, level_ratio, years_of  # noqa: E402
from gexhistory.pipeline.validate import modelled_close_gex  # noqa: E402
from gexhistory.sources.reference import Reference, read_reference  # noqa: E402

DEFAULT_REFERENCE = REPO / "tests" / "data" / "spx_gex_2011_2022.csv"  # the shared file, copied (tests/data/README.md)

# The values the search starts from: the first, uncalibrated model, with the era parameters added
# since at the values that make them do nothing (one DTE decay in every era, the old monthly weight,
# a put/call split that ignores volatility).
V1 = dict(strikes_added_within=0.0, oi_turnover=0.04, activity_elasticity=1.0, dte_decay_days=18.0,
          dte_decay_days_midweek=18.0,
          put_call_volume=1.35, put_call_vol_elasticity=0.0, monthly_weight=2.2, call_center_sd=0.35,
          put_center_sd=-0.75, call_width_sd=0.8, put_width_sd=1.1, iv_premium=1.15, skew_slope=-0.12,
          flow_scale=1.0)

# (low, high) of each free parameter searched; the others keep their defaults.
SPACE_1 = {
    "oi_turnover": (0.01, 0.10),
    "activity_elasticity": (0.0, 2.0),
    "dte_decay_days": (5.0, 60.0),
    "dte_decay_days_midweek": (5.0, 60.0),
    "monthly_weight": (0.5, 6.0),
    "put_call_volume": (0.8, 2.5),
    "put_call_vol_elasticity": (-0.1, 0.3),
    "call_center_sd": (-0.2, 1.2),
    "put_center_sd": (-2.5, -0.2),
    "call_width_sd": (0.3, 1.5),
    "put_width_sd": (0.3, 2.0),
    "iv_premium": (0.9, 1.6),
    "skew_slope": (-0.4, 0.0),
}
SPACE_2 = {**SPACE_1, "oi_turnover": (0.002, 0.10), "dte_decay_days": (5.0, 150.0),
           "dte_decay_days_midweek": (5.0, 150.0), "monthly_weight": (0.5, 12.0), "put_call_volume": (0.4, 2.5)}
STAGES = ((SPACE_1, 60, 1, 7), (SPACE_2, 160, 2, 11))  # space, trials, refinement rounds, seed
D_GRID = (0.0, 0.05, 0.08, 0.10, 0.12, 0.15)  # stage 3's distances to an edge, in log of the price
SIGN_WEIGHT = 0.25  # the objective's weight on sign agreement (the Spearman terms weigh 0.5 each)


def truncate(ref: Reference, until: dt.date) -> Reference:
    n = sum(d <= until for d in ref.dates)
    return Reference(ref.dates[:n], ref.close[:n], ref.gex[:n], ref.close_column, ref.path)


def usable(ref: Reference) -> np.ndarray:
    """The sessions that can be scored at all: every one after the warm-up that has a GEX value."""
    return ref.scored()


class Fit:
    """The objective on the sessions `mask` of `ref` (the only reference GEX values it reads)."""

    def __init__(self, ref: Reference, mask: np.ndarray, sign_weight: float = SIGN_WEIGHT):
        self.ref, self.mask = ref, np.asarray(mask, dtype=bool)
        self.sign_weight = float(sign_weight)
        self.gex = ref.gex[self.mask]  # nothing else of the reference GEX is kept
        self.years = years_of(ref.dates)[self.mask]
        self.runs = 0

    def model(self, params: ModelParams) -> np.ndarray:
        self.runs += 1
        return modelled_close_gex("SPX", self.ref.dates, self.ref.close, params)

    def score(self, params: ModelParams) -> tuple[float, dict]:
        model = self.model(params)[self.mask]
        m = compare(model, self.gex)
        yearly = [spearman(model[self.years == y], self.gex[self.years == y]) for y in np.unique(self.years)]
        yearly = [r for r in yearly if np.isfinite(r)]
        rho = m["spearman"] if m["spearman"] is not None else -1.0
        m["mean_year_spearman"] = float(np.mean(yearly)) if yearly else -1.0
        return 0.5 * rho + 0.5 * m["mean_year_spearman"] + self.sign_weight * m["sign_agreement"], m

    def level(self, params: ModelParams) -> ModelParams:
        """params with flow_scale set so the fitted sessions' median |GEX| matches the reference's."""
        ratio = level_ratio(self.model(params)[self.mask], self.gex)
        return dataclasses.replace(params, flow_scale=round(params.flow_scale / ratio, 4))


def _fmt(m: dict) -> str:
    return (f"rho={m['spearman'] or float('nan'):.4f} yr={m['mean_year_spearman']:.4f} "
            f"sign={m['sign_agreement']:.3f}")


def search(fit: Fit, start: ModelParams, space: dict, trials: int, rounds: int, seed: int, log=print) -> ModelParams:
    rng = np.random.default_rng(seed)
    best = start
    best_obj, best_m = fit.score(best)
    log(f"start: obj={best_obj:.4f} {_fmt(best_m)}")
    for trial in range(trials):
        # half the trials anywhere in the box, half near the best so far
        if trial % 2 == 0:
            cand = {k: rng.uniform(lo, hi) for k, (lo, hi) in space.items()}
        else:
            cand = {k: float(np.clip(getattr(best, k) + rng.normal(0, 0.15 * (hi - lo)), lo, hi))
                    for k, (lo, hi) in space.items()}
        params = dataclasses.replace(best, **cand)
        obj, m = fit.score(params)
        mark = ""
        if obj > best_obj:
            best, best_obj, best_m, mark = params, obj, m, "  <- best"
        log(f"trial {trial:3d} obj={obj:.4f} {_fmt(m)} " + " ".join(f"{k}={v:.3g}" for k, v in cand.items()) + mark)
    for rnd in range(rounds):
        for k, (lo, hi) in space.items():
            for frac in (-0.08, 0.08, -0.03, 0.03):
                v = float(np.clip(getattr(best, k) + frac * (hi - lo), lo, hi))
                params = dataclasses.replace(best, **{k: v})
                obj, m = fit.score(params)
                if obj > best_obj:
                    best, best_obj, best_m = params, obj, m
                    log(f"refine {rnd} {k}={v:.4g}: obj={obj:.4f} {_fmt(m)}  <- best")
    log(f"best: obj={best_obj:.4f} {_fmt(best_m)}")
    return best


def choose_edges(fit: Fit, params: ModelParams, log=print) -> ModelParams:
    """Stage 3: params with the strikes_added_within of D_GRID that scores best on the fitted sessions
    (the smaller one on a tie), every other value kept."""
    best, best_obj = params, -np.inf
    for d in D_GRID:
        cand = dataclasses.replace(params, strikes_added_within=d)
        obj, m = fit.score(cand)
        mark = ""
        if obj > best_obj:
            best, best_obj, mark = cand, obj, "  <- best"
        log(f"stage 3: strikes_added_within={d:g} obj={obj:.4f} {_fmt(m)}{mark}")
    return best


def calibrate(fit: Fit, log=print, searched: ModelParams | None = None) -> ModelParams:
    """The whole fit (both search stages from V1, stage 3, then the level), rounded to 4 decimals as the
    defaults are. `searched`: the result of stages 1 and 2 recorded by an earlier run of this same
    fit (they are deterministic: same start, seeds and sessions), taken instead of searching again."""
    if searched is None:
        best = dataclasses.replace(ModelParams(), **V1)
        for n, (space, trials, rounds, seed) in enumerate(STAGES, start=1):
            log(f"== stage {n}: {trials} trials, {rounds} refinement rounds, seed {seed}")
            best = search(fit, best, space, trials, rounds, seed, log)
        best = dataclasses.replace(best, **{k: round(getattr(best, k), 4) for k in SPACE_2})
    else:
        best = dataclasses.replace(searched, strikes_added_within=V1["strikes_added_within"])
        log("== stages 1 and 2: taken from a recorded run: "
            + json.dumps({k: getattr(best, k) for k in SPACE_2}))
    log(f"== stage 3: strikes_added_within in {D_GRID}")
    best = choose_edges(fit, best, log)
    best = fit.level(best)
    log("found: " + json.dumps({k: getattr(best, k) for k in (*SPACE_2, "strikes_added_within", "flow_scale")}))
    return best


def searched_params(record: dict) -> ModelParams:
    """The ModelParams of a run's JSON record ("params"), as the search stages left them."""
    known = {f.name for f in dataclasses.fields(ModelParams)}
    return dataclasses.replace(ModelParams(), **{k: v for k, v in record["params"].items() if k in known})


def year_lines(years: dict) -> list[str]:
    out = []
    for y, m in years.items():
        p, r = m["negative_precision"], m["negative_recall"]
        out.append(f"  {y}: n={m['n']:3d} spearman={m['spearman'] or float('nan'):.3f} "
                   f"sign={m['sign_agreement']:.3f} neg precision={'-' if p is None else f'{p:.2f}'} "
                   f"recall={'-' if r is None else f'{r:.2f}'} level={m['level_ratio'] or float('nan'):.2f} "
                   f"(negative: ref {m['reference_negative_share']:.2f}, model {m['model_negative_share']:.2f})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default=str(DEFAULT_REFERENCE))
    ap.add_argument("--until", default="2022-12-31")
    ap.add_argument("--json", help="write the parameters found and the per-year figures here")
    ap.add_argument("--sign-weight", type=float, default=SIGN_WEIGHT,
                    help=f"the objective's weight on sign agreement (default {SIGN_WEIGHT})")
    ap.add_argument("--stages-from", help="a JSON record (--json) of an earlier run of the same fit: take its "
                                          "stage 1-2 result instead of searching again, then run stage 3")
    args = ap.parse_args()
    searched = searched_params(json.loads(Path(args.stages_from).read_text())) if args.stages_from else None
    until = dt.date.fromisoformat(args.until)
    full = read_reference(args.reference)
    ins = truncate(full, until)
    print(f"calibrating on {ins.dates[0]}..{ins.dates[-1]} ({len(ins.dates)} sessions, first {WARMUP_SESSIONS} "
          f"warm-up); sessions after it, unseen: {len(full.dates) - len(ins.dates)}; "
          f"objective sign weight {args.sign_weight:g}", flush=True)
    t0 = time.perf_counter()
    fit = Fit(ins, usable(ins), args.sign_weight)
    best = calibrate(fit, lambda line: print(line, flush=True), searched)
    print(f"\nsearch took {time.perf_counter() - t0:.0f}s ({fit.runs} model runs)")
    model = modelled_close_gex("SPX", full.dates, full.close, best)
    ok = usable(full)
    years = by_year(full.dates, model, full.gex, ok)
    print("per calendar year (in sample up to --until):")
    print("\n".join(year_lines(years)))
    before = np.array([d <= until for d in full.dates]) & ok
    m = compare(model[before], full.gex[before])
    p, r = m["negative_precision"], m["negative_recall"]
    print(f"in sample, pooled: n={m['n']} spearman={m['spearman']:.4f} sign={m['sign_agreement']:.4f} "
          f"neg precision={'-' if p is None else f'{p:.3f}'} recall={'-' if r is None else f'{r:.3f}'}")
    after = np.array([d > until for d in full.dates]) & ok
    if after.any():
        m = compare(model[after], full.gex[after])
        print(f"after --until (not used above): n={m['n']} spearman={m['spearman']:.4f} sign={m['sign_agreement']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"until": args.until, "sign_weight": args.sign_weight,
                                               "params": best.as_dict(),
                                               "by_year": years}, indent=1))


if __name__ == "__main__":
    main()

"""wattwise.predict: pure forecasting, instability and failure prediction (no I/O, seeds passed in).

Contracts and values live in :mod:`wattwise.predict.base`. Forecasters (all with split-conformal
intervals from :mod:`~wattwise.predict.engine`): ``SeasonalNaiveForecaster`` and
``HoltWintersForecaster`` (baselines), ``LightGbmForecaster``, ``LstmForecaster`` (``ml`` extra)
and ``ArimaForecaster``. Detectors: ``RobustZScoreDetector`` (baseline), ``PcaInstabilityDetector``,
``HeartbeatInstabilityDetector`` (time since the last beat against a learned per-node limit).
Failure predictors: ``ThresholdFailurePredictor`` (baseline), ``LightGbmFailurePredictor``.
Power: ``SpecPowerModel`` and ``LinearPowerModel``. Evaluation helpers: :mod:`~wattwise.predict.backtest`
and :mod:`~wattwise.predict.events`. Model storage: :mod:`~wattwise.predict.registry`.
Modules are imported directly (``from wattwise.predict.gbm import LightGbmForecaster``) so that
importing the layer never pulls torch in.
"""

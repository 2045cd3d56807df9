"""Executing runs and keeping their results: training one run (runner) or seeds together
(ensembles, grouped by grouping), where runs execute
(executors, workers), the driver, checkpoints, the record store, time limits (deadline),
failure kinds, observers, the progress display and the environment block of a record.

May import: harness.contract, harness.registry, harness.suites, harness.solvers, harness.toolkit,
and the leaves every part may name (harness.record, harness.data_root, harness.widths,
harness.setting_values).
"""

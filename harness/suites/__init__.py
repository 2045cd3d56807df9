"""Suite files in, run specs out: reading and checking YAML (validation), the run settings with
their defaults and checks, the run spec and its key (runspec), one level of settings checked
and merged (levels), a suite's run entries checked (entries), and a suite expanded into
resolved runs (loader).

May import: harness.contract, harness.registry, harness.solvers, and the leaves every part may
name (harness.record, harness.data_root, harness.widths, harness.setting_values).
"""

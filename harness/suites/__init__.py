"""Suite files in, run specs out: reading and checking YAML (validation), expanding a suite
into resolved runs (loader), and the run spec with its key (runspec).

May import: harness.contract, harness.registry, harness.solvers.settings.
"""

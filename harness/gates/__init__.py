"""Gates that fail a change: NFE budgets (budgets) and the pytest plugin (pytest_plugin).

May import: everything below harness.cli except harness.conformance.
"""

"""Reading results into tables, figures, the claims checklist, comparisons and the report page:
seed aggregation (aggregate), Markdown/CSV tables (tables), figures, claims (with the paper's
claims in paper_claims/), compare, the renderer (render) and the page (page).

May import: harness.contract, harness.suites.validation, harness.running.store,
harness.running.tracebacks, harness.running.configs.
"""

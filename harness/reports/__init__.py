"""Reading results into tables, figures, the claims checklist, comparisons and the report page:
seed aggregation (aggregate), Markdown/CSV tables (tables), figures, claims (with the paper's
claims in paper_claims/), compare, the work–precision figure and chapter 5's solver claims of pure-solve studies
(work_precision), the renderer (render) and the page (page).

May import: harness.contract, harness.suites.validation, harness.running.store.
"""

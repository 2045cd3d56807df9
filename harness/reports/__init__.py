"""Reading results into tables, figures, the claims checklist, comparisons and the report page:
statistics over seeds with scipy (seed_statistics), seed aggregation (aggregate), Markdown/CSV tables
(tables), the figure kinds (figures) and their drawing (drawing), claims files (claims, with the
paper's claims in paper_claims/), their verdicts on records (claim_verdicts: the checks over
seeds in claim_checks, their settings and failed runs in claim_contexts, their tests in
exact_tests, verdicts and corrections in claim_tests, the verdict words in claim_results), compare, the work–precision figure and chapter 5's solver claims of pure-solve
studies (work_precision), the renderer (render) and the page (page).

May import: harness.contract, harness.suites.validation, harness.running.store,
harness.running.tracebacks, harness.running.configs, harness.solvers.built_in (which methods
step on a fixed grid), harness.solvers.settings (the solver settings, for setting labels).
"""

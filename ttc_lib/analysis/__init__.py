"""From results to findings: accuracy tables, difficulty bins, compute-optimal envelopes and
efficiency ratios (with question-bootstrap intervals), the strategy policy (which strategy per
difficulty and budget: ``policy.json`` and ``solve()``), the test-time-vs-pretraining exchange,
verifier quality (AUROC, aggregation choice), uncertainty over questions (bootstrap intervals), the
verdict rule and the table of the paper's claims measured with it, and plots (figures only, no maths).

Owns: accuracy, results_table, difficulty, compute_optimal, envelopes, efficiency, ratio_curve, strategy_policy,
strategy_policy_file, exchange, verifier_quality, auroc, aggregation, uncertainty, ratio_bootstrap, ratio_study,
ratio_figures, verdict, claims, revision_intervals,
exchange_intervals, comparisons, plots, plots_revisions, plots_exchange, plots_search.
May import every layer below it: ``storage``, ``tasks``, ``models``, ``generation``,
``verifiers``, ``revisions``, ``search``.
"""

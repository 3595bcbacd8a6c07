"""From results to findings: accuracy tables, difficulty bins, compute-optimal envelopes and
efficiency ratios, the strategy policy (which strategy per difficulty and budget: ``policy.json``
and ``solve()``), the test-time-vs-pretraining exchange, verifier quality (AUROC, aggregation
choice), uncertainty over questions (bootstrap intervals), and plots (figures only, no maths).

Owns: accuracy, results_table, difficulty, compute_optimal, envelopes, efficiency, ratio_curve, strategy_policy,
strategy_policy_file, exchange, verifier_quality, auroc, aggregation, uncertainty, plots.
May import every layer below it: ``storage``, ``tasks``, ``models``, ``generation``,
``verifiers``, ``revisions``, ``search``.
"""

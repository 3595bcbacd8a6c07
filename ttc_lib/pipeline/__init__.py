"""Running the study: stages and their folders (``runs.Stage``, manifests, summaries built by
``summaries``, the artifacts a finished stage records and the checks of its inputs), the papermill
runner behind ``make run`` / ``python -m ttc_lib.pipeline`` with its parameter ranges and its one
run per profile (``run_lock``), the machine a run is on (``environment``: what manifests record,
the stop of a GPU profile on CPU), the comparison of two runs (``compare_runs``), what a stage does
with a user's own model and no training data (``own_model``), and a finished run as the results
folder with a README made from its summaries (``publish``, ``results_readme``).

Owns: runs, artifacts, environment, summaries, runner, parameter_ranges, run_lock, compare_runs, own_model,
publish, results_readme, __main__.
May import every other layer (it is the top).
"""

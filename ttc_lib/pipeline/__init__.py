"""Running the study: stages and their folders (``runs.Stage``, manifests, summaries), the
papermill runner behind ``make run`` / ``python -m ttc_lib.pipeline``, and what a stage does
with a user's own model and no training data (``own_model``).

Owns: runs, runner, parameter_ranges, own_model, __main__. May import every other layer (it is the top).
"""

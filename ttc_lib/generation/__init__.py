"""The ``Generator`` (full solutions, or the next step from prefixes, on CPU or CUDA, seeded per
question so batching never changes a sample) and its engine: the key/value cache, prefill,
decoding, prefix reuse, teacher forcing, sampling, memory budgets (fixed on CPU, from free memory
on CUDA); the rule for prompts too long for the model
(refused, or left out beforehand by ``context_limit.fitting_problems``); plain pass@1 of a generator.

Owns: generator, context_limit, kv_cache, prefill, decoding, prefix_reuse, teacher_forcing, sampling,
memory, pass_at_1.
May import: ``ttc_lib.storage``, ``ttc_lib.tasks``, ``ttc_lib.models``.
"""

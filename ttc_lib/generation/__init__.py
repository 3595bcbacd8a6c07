"""The ``Generator`` (full solutions, or the next step from prefixes, on CPU or CUDA, seeded per
question so batching never changes a sample) and its engine: the key/value cache, prefill,
decoding, prefix reuse, teacher forcing, sampling; plain pass@1 of a generator.

Owns: generator, kv_cache, prefill, decoding, prefix_reuse, teacher_forcing, sampling, pass_at_1.
May import: ``ttc_lib.storage``, ``ttc_lib.tasks``, ``ttc_lib.models``.
"""

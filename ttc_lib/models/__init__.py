"""Models trained from scratch: the tokenizer, model specs and checkpoints (normal Hugging Face
folders that carry their own ``ttc_config.json``), training rows and batches, the training loop and
its config, parallel training jobs, the cost ledger (``cost.Cost``, FLOPs formulas), a model's
identity for cache keys, and the executors the long loops of every stage run their independent
pieces on (``workers``: local processes; ``ray_workers``: Ray tasks and actors, one machine or a cluster).

Owns: tokenizer, checkpoints, identity, cost, train_config, batches, context_rows, training,
parallel_training, study_models, workers, ray_workers. May import: ``ttc_lib.storage`` and ``ttc_lib.tasks``.
"""

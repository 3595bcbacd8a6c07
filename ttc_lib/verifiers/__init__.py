"""Verifiers: one ``Verifier`` protocol (``score()`` -> per-step scores) and a name -> kind table,
the likelihood PRM, the trained-head PRM/ORM (its data and training), external PRMs, and the
Monte-Carlo step labels they are trained on.

Owns: base, kinds, likelihood_prm, head_prm, head_prm_data, head_prm_training, external_prm,
labelling, hash_verifier (no model: for tests and benchmarks). May import: ``ttc_lib.storage``, ``ttc_lib.tasks``, ``ttc_lib.models``,
``ttc_lib.generation``.
"""

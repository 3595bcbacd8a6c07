"""Revision models (the paper's section 6): revision data (incorrect attempts in context, the
closest by edit distance last), fine-tuning a revision model, the context probe (what a reviser
reads), and the analysis of revision chains (pass@1 by step, transitions, ratio sweeps).
The revision *search strategy* (chains + selection) is ``ttc_lib.search.revision_chains``.

Owns: data, training, probe, analysis. May import: ``ttc_lib.storage``, ``ttc_lib.tasks``,
``ttc_lib.models``, ``ttc_lib.generation``, ``ttc_lib.verifiers``.
"""

"""ttc_lib: compute-optimal test-time compute (Snell et al. 2024) as a small library.

Subpackages by idea, lowest layer first (each imports only from the ones before it):
``storage`` (atomic writes, result caches) -> ``tasks`` -> ``models`` -> ``generation`` ->
``verifiers`` -> ``revisions`` -> ``search`` -> ``analysis`` -> ``pipeline``.
tests/test_architecture.py checks the order from the source. The notebooks under notebooks/ call
these and hold no logic of their own.
"""

from ttc_lib.progress import install as _install_progress

__version__ = "0.1.0"

_install_progress()  # progress lines on the runner's terminal when it asks for them (ttc_lib/progress.py)

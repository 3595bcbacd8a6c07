"""ttc_lib: compute-optimal test-time compute (Snell et al. 2024) as a small library.

One idea per module; the notebooks under notebooks/ call these and hold no logic of their own.
"""

__version__ = "0.1.0"

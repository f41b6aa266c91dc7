"""Measuring and plotting what the experiments need, on top of any zoo model.

- ``attention``: ``capture_attention`` (weights of every attention module, SDPA path on), entropy.
- ``metrics``: log-likelihood under the model, bits per byte, distinct-n and repetition of generations.
- ``profiling``: step time, peak memory, KV-cache bytes (computed for a config, measured on a cache).
- ``scaling``: fit and plot ``L(N) = a·N^-α + c``.
- ``training``: ``train(task, data, max_steps=...)`` returning a ``History`` of curves.
- ``coordinates``: μP's coordinate check (``coordinate_check``, ``family_coordinate_check``, its plot;
  ``python -m zoo.analysis.coordinates``).
- ``transfer``: one point of a learning-rate transfer sweep (``train_at_width``, ``final_val_loss``).
- ``stats``: values over seeds, and whether a difference is inside the seed spread.
- ``plots``: loss curves, bars with seed error bars, attention heatmaps.
- ``notebook``: the ``ZOO_NOTEBOOK_SCALE`` switch and the ``RESULTS`` line the tests read.

``training``, ``plots``, ``coordinates`` and ``transfer`` import Lightning; the rest need only torch (``scaling`` needs scipy).
"""

from zoo.analysis.attention import AttentionMaps, attention_entropy, attention_weights, capture_attention
from zoo.analysis.metrics import (
    LanguageModelScore,
    SequenceScores,
    bits_per_byte,
    distinct_n,
    repetition_rate,
    score_language_model,
    sequence_log_likelihood,
    token_log_probs,
)
from zoo.analysis.notebook import notebook_scale, pick, read_results, report, setup_notebook
from zoo.analysis.profiling import Timing, cache_nbytes, kv_cache_bytes, peak_memory_bytes, time_call
from zoo.analysis.scaling import PowerLaw, fit_power_law, plot_power_law
from zoo.analysis.stats import Difference, SeedStats, difference, seed_stats

__all__ = [
    "AttentionMaps",
    "Difference",
    "LanguageModelScore",
    "PowerLaw",
    "SeedStats",
    "SequenceScores",
    "Timing",
    "attention_entropy",
    "attention_weights",
    "bits_per_byte",
    "cache_nbytes",
    "capture_attention",
    "difference",
    "distinct_n",
    "fit_power_law",
    "kv_cache_bytes",
    "notebook_scale",
    "peak_memory_bytes",
    "pick",
    "plot_power_law",
    "read_results",
    "repetition_rate",
    "report",
    "score_language_model",
    "seed_stats",
    "setup_notebook",
    "sequence_log_likelihood",
    "time_call",
    "token_log_probs",
]

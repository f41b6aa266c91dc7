"""Measuring and plotting what the experiments need, on top of any zoo model.

- ``attention``: ``capture_attention`` (weights of every attention module, SDPA path on), entropy.
- ``metrics``: log-likelihood under the model, bits per byte, distinct-n and repetition of generations.
- ``profiling``: step time (one call, or several in alternating rounds), peak memory, KV-cache bytes
  (computed for a config, measured on a cache).
- ``scaling``: fit and plot ``L(N) = a·N^-α + c`` (with bootstrap intervals over the sizes) and
  ``L(N, D) = E + A/N^α + B/D^β`` (Hoffmann et al.'s approach 3).
- ``training``: ``train(task, data, max_steps=...)`` returning a ``History`` of curves.
- ``coordinates``: μP's coordinate check (``coordinate_check``, ``family_coordinate_check``, its plot;
  ``python -m zoo.analysis.coordinates``).
- ``transfer``: one point of a learning-rate transfer sweep (``train_at_width``, ``final_val_loss``).
- ``stats``: paired comparisons over seeds (interval, p-value, Holm, detectable difference, verdict).
- ``plots``: loss curves, bars from zero with 95 % intervals, paired differences, attention heatmaps; one
  colour per variant.
- ``notebook``: the ``ZOO_NOTEBOOK_SCALE`` switch and the ``RESULTS`` line the tests and the README read.
- ``provenance``: the commit and a fingerprint of ``zoo/`` that every result records.

``training``, ``plots``, ``coordinates`` and ``transfer`` import Lightning; the rest need only torch
(``scaling``, ``stats`` need scipy).
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
from zoo.analysis.notebook import (
    claim_verdict,
    notebook_scale,
    overall_verdict,
    pick,
    read_results,
    report,
    setup_notebook,
)
from zoo.analysis.profiling import (
    Timing,
    cache_nbytes,
    kv_cache_bytes,
    peak_memory_bytes,
    time_call,
    time_interleaved,
)
from zoo.analysis.provenance import code_fingerprint, provenance
from zoo.analysis.scaling import (
    ChinchillaLaw,
    PowerLaw,
    PowerLawBootstrap,
    bootstrap_power_law,
    fit_chinchilla,
    fit_power_law,
    plot_power_law,
)
from zoo.analysis.stats import (
    PairedComparison,
    PairedInterval,
    SeedStats,
    StatisticsError,
    compare_to_baseline,
    detectable_difference,
    holm,
    holm_corrected,
    paired_comparison,
    seed_stats,
    seeds_needed,
)

__all__ = [
    "AttentionMaps",
    "ChinchillaLaw",
    "LanguageModelScore",
    "PairedComparison",
    "PairedInterval",
    "PowerLaw",
    "PowerLawBootstrap",
    "SeedStats",
    "SequenceScores",
    "StatisticsError",
    "Timing",
    "attention_entropy",
    "attention_weights",
    "bits_per_byte",
    "bootstrap_power_law",
    "cache_nbytes",
    "capture_attention",
    "claim_verdict",
    "code_fingerprint",
    "compare_to_baseline",
    "detectable_difference",
    "distinct_n",
    "fit_chinchilla",
    "fit_power_law",
    "holm",
    "holm_corrected",
    "kv_cache_bytes",
    "notebook_scale",
    "overall_verdict",
    "paired_comparison",
    "peak_memory_bytes",
    "pick",
    "plot_power_law",
    "provenance",
    "read_results",
    "repetition_rate",
    "report",
    "score_language_model",
    "seed_stats",
    "seeds_needed",
    "setup_notebook",
    "sequence_log_likelihood",
    "time_call",
    "time_interleaved",
    "token_log_probs",
]

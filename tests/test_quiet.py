"""quiet_lightning silences Lightning inside its block only: a caller's own logging is as it was after
(zoo compare left Lightning's INFO lines off for the rest of the process, hiding e.g. fine-tuning's
trainable-parameter count in a later run)."""

from __future__ import annotations

import logging
import warnings

from zoo.quiet import quiet_lightning


def test_levels_and_warning_filters_are_restored_even_after_an_error():
    logger = logging.getLogger("lightning.pytorch")
    logger.setLevel(logging.DEBUG)
    filters = list(warnings.filters)
    try:
        with quiet_lightning():
            assert logger.getEffectiveLevel() == logging.WARNING
            raise RuntimeError("a run that fails")
    except RuntimeError:
        pass
    assert logger.level == logging.DEBUG and warnings.filters == filters
    logger.setLevel(logging.NOTSET)

"""Lightning's per-run banners and data-loader hints, silenced for the length of a ``with`` block.

Library code that trains many small runs in a row (``zoo compare``, the notebooks' ``train``) uses
``quiet_lightning()`` so the user's output holds its own progress lines; the loggers' levels and the
warning filters are put back afterwards, so a caller's own Lightning logging is untouched.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
HINTS = (".*does not have many workers.*", ".*smaller than the logging interval.*", ".*LeafSpec.*",
         ".*TreeSpec.*", ".*GPU available but not used.*", ".*Precision 32-true.*")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's INFO lines and known hint warnings off inside the block, as they were after it."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in HINTS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)

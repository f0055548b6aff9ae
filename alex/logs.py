"""Logging setup: one line per record on stdout, JSON in production."""

from __future__ import annotations

import json
import logging
import sys

from alex.config import Config


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(config: Config) -> None:
    """Send the `alex` loggers to stdout at ALEX_LOG_LEVEL (once per process)."""
    logger = logging.getLogger("alex")
    logger.setLevel(config.log_level)
    if any(getattr(handler, "_alex", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler._alex = True  # type: ignore[attr-defined]
    if config.production:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)

"""Logging setup: one line per record on stdout, JSON in production, ids on each line, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from alex.config import Config
from alex.observability.context import ContextFilter, record_ids

REDACTED = "***"
# Loggers whose records never reach the `alex` handler and get the redaction filter on their own handlers: the
# root (other libraries' records propagate there) and gunicorn's, which do not propagate.
OTHER_LOGGERS = ("", "gunicorn.error", "gunicorn.access")
MIN_SECRET_CHARS = 4  # a configured secret shorter than this would blank out ordinary words
_PATTERNS = (
    # Authorization header values, wherever they end up (an echoed header, an exception message).
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # Credentials in query strings and key=value text (stream tokens come in ?access_token=).
    (re.compile(r"(?i)\b(access_token|token|api_key|apikey|password|secret)=[^&\s\"',;]+"), r"\1=" + REDACTED),
    # The same names as JSON keys.
    (re.compile(r"(?i)(\"(?:access_token|token|api_key|apikey|password|secret)\"\s*:\s*\")[^\"]*"), r"\1" + REDACTED),
    # Anything shaped like an OpenAI key, configured or not.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-" + REDACTED),
)
# Every pattern above needs one of these words: one search skips the four substitutions for an ordinary line.
_MAY_HOLD_SECRET = re.compile(r"(?i)bearer|basic|token|api_?key|password|secret|sk-")


class RedactionFilter(logging.Filter):
    """Rewrites each record so no secret reaches any handler: the configured ones and known shapes."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def add_secrets(self, *secrets: str) -> None:
        """Also redact these exact values (API keys, OPENAI_API_KEY, the signing key)."""
        known = set(self._secrets) | {secret for secret in secrets if len(secret) >= MIN_SECRET_CHARS}
        self._secrets = tuple(sorted(known, key=len, reverse=True))  # longest first: a key may contain another

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by ***."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if _MAY_HOLD_SECRET.search(text) is None:
            return text
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad format arguments must not turn a log call into a crash
            message = f"{record.msg!s} (unformattable arguments)"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)  # formatters print exc_text when it is set
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {key: self.redact(value) if isinstance(value, str) else value
                             for key, value in fields.items()}
        return True


def _utc_time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line, with its ids and structured `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": _utc_time(record), "level": record.levelname, "logger": record.name,
                                 "message": record.getMessage(), **record_ids(record)}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update((key, value) for key, value in fields.items() if key not in entry)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        elif record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request_id=… task_id=…]` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{name}={value}" for name, value in record_ids(record).items())
        if not ids:
            return line
        first, newline, rest = line.partition("\n")  # ids on the message line, before any traceback
        return f"{first} [{ids}]{newline}{rest}"


class AlexHandler(logging.StreamHandler):
    """The one handler of the `alex` loggers: stdout as it is now (tests swap it), ids added, secrets removed."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.redaction = RedactionFilter()
        self.addFilter(ContextFilter())
        self.addFilter(self.redaction)

    @property
    def stream(self):  # noqa: D102 - always the current sys.stdout
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass  # StreamHandler.__init__ assigns it; the property above wins


def configure_logging(config: Config) -> None:
    """Send the `alex` loggers to stdout at ALEX_LOG_LEVEL: JSON in production, text otherwise; secrets redacted
    there and on the handlers of the root and gunicorn loggers (see `redact_other_loggers`).

    One handler per process; a later app (tests build many) sets its format and adds its secrets.
    """
    logger = logging.getLogger("alex")
    logger.setLevel(config.log_level)
    handler = next((h for h in logger.handlers if isinstance(h, AlexHandler)), None)
    if handler is None:
        handler = AlexHandler()
        logger.addHandler(handler)
    handler.setFormatter(JsonFormatter() if config.production else TextFormatter())
    handler.redaction.add_secrets(config.openai_api_key, config.secret_key, config.metrics_token, *config.api_keys)
    redact_other_loggers(handler.redaction)


def redact_other_loggers(redaction: RedactionFilter) -> None:
    """Add `redaction` to the handlers the root and gunicorn loggers have now, and to logging's last resort.

    A handler filter sees every record the handler writes, propagated ones included (a logger's own filters do
    not). Handlers added later are not covered: under gunicorn they all exist before the app is built. The last
    resort writes the warnings of loggers without any handler when the root has none (gunicorn leaves it bare).
    """
    handlers = [handler for name in OTHER_LOGGERS for handler in logging.getLogger(name).handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not isinstance(handler, AlexHandler):
            handler.addFilter(redaction)  # a no-op when this filter is already there


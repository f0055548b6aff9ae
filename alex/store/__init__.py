"""Persistence and cross-process fan-out behind two interfaces (Store, Bus); backends chosen by config."""

from __future__ import annotations

from alex.config import Config, ConfigError
from alex.store.base import Bus, Store
from alex.store.local_bus import LocalBus
from alex.store.sqlite import SQLiteStore


def build_store(config: Config) -> Store:
    """The store the configuration asks for (the embedded SQLite file unless REDIS_URL is set)."""
    if config.redis_url:
        raise ConfigError("REDIS_URL is set but this version has no Redis backend yet: unset REDIS_URL")
    return SQLiteStore(config.data_dir / "alex.sqlite3", event_retention=config.event_retention,
                       max_pending_events=config.event_pending_max)


def build_bus(config: Config) -> Bus:
    """The bus the configuration asks for (in-process unless REDIS_URL is set)."""
    if config.redis_url:
        raise ConfigError("REDIS_URL is set but this version has no Redis backend yet: unset REDIS_URL")
    return LocalBus()

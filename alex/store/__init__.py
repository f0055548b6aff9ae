"""Persistence and cross-process fan-out behind two interfaces (Store, Bus); backends chosen by config."""

from __future__ import annotations

from alex.config import Config
from alex.store.base import Bus, Store
from alex.store.sqlite import SQLiteStore
from alex.store.sqlite_bus import SQLiteBus


def build_store(config: Config) -> Store:
    """The store the configuration asks for: Redis with REDIS_URL, else the embedded SQLite file."""
    if config.redis_url:
        from alex.store.redis_store import RedisStore

        return RedisStore(config.redis_url, event_retention=config.event_retention, prefix=config.redis_prefix)
    return SQLiteStore(config.data_dir / "alex.sqlite3", event_retention=config.event_retention,
                       max_pending_events=config.event_pending_max)


def build_bus(config: Config, store: Store) -> Bus:
    """The bus the configuration asks for: Redis's bus stream with REDIS_URL, else in-process delivery with a tail
    of what other processes write to the file."""
    if config.redis_url:
        from alex.store.redis_bus import RedisBus
        from alex.store.redis_store import RedisStore

        assert isinstance(store, RedisStore)
        return RedisBus(config.redis_url, store.bus_key)
    assert isinstance(store, SQLiteStore)
    return SQLiteBus(store)

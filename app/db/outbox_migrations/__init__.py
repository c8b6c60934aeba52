"""The database layer's own migrations: the cache outbox (recorded under `outbox` in `schema_migrations`)."""

__all__: tuple[str, ...] = ()

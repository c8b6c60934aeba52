CREATE TABLE cache_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace   TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);
CREATE INDEX cache_outbox_created_at ON cache_outbox (created_at);

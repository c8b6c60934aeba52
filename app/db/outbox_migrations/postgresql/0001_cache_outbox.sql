CREATE TABLE cache_outbox (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace   TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    version     BIGINT      NOT NULL,
    kind        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX cache_outbox_created_at ON cache_outbox (created_at);

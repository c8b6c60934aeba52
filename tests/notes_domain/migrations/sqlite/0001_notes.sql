CREATE TABLE notes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    text        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

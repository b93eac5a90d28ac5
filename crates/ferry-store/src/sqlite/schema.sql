-- ferry state store, schema version 1.

-- The invariants of the run (one row at most), as JSON.
CREATE TABLE setup (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    invariants  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Phases of the run.
CREATE TABLE section (
    name        TEXT    PRIMARY KEY,
    seq         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    done_at     INTEGER
);

-- Copy units: whole tables or block ranges of split tables.
CREATE TABLE unit (
    key          TEXT    PRIMARY KEY,
    schema_name  TEXT    NOT NULL,
    table_name   TEXT    NOT NULL,
    part         INTEGER NOT NULL,
    parts        INTEGER NOT NULL,
    start_block  INTEGER,           -- NULL: the whole table
    end_block    INTEGER,           -- NULL: to the end of the table
    state        TEXT    NOT NULL CHECK (state IN ('started', 'committing', 'done')),
    target_xid   INTEGER,
    rows         INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    done_at      INTEGER
);

CREATE TABLE error (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    section  TEXT    NOT NULL,
    message  TEXT    NOT NULL
);

-- Every invocation; survives a reset.
CREATE TABLE command (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    argv         TEXT    NOT NULL,  -- JSON array
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    outcome      TEXT
);

CREATE TABLE kv (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

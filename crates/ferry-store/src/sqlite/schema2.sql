-- ferry state store, schema version 2: validation results and events.

-- One row per finished `ferry validate`.
CREATE TABLE validation (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    finished_at  INTEGER NOT NULL,
    result       TEXT    NOT NULL,   -- 'equal' or 'different'
    tables       INTEGER NOT NULL,
    differences  INTEGER NOT NULL,
    unsettled    INTEGER NOT NULL,
    seconds      REAL    NOT NULL
);

-- Each difference of a validation, as its JSON report entry.
CREATE TABLE validation_difference (
    validation_id  INTEGER NOT NULL REFERENCES validation (id),
    seq            INTEGER NOT NULL,
    table_name     TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    detail         TEXT    NOT NULL,
    PRIMARY KEY (validation_id, seq)
);

-- Things worth keeping that are not errors (online validation's mismatches, ...).
CREATE TABLE event (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    message  TEXT    NOT NULL
);

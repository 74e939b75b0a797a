-- Every change of a setting the catalogue keeps, oldest first: by a run (from a settings file or
-- a FINPRINT_* variable) or by `finprint settings set/reset` (value NULL: back to the default).
-- `finprint settings --history` lists it. Seeded with the values kept before it existed.
CREATE TABLE settings_history (
    name VARCHAR NOT NULL,
    value VARCHAR,
    source VARCHAR NOT NULL,
    run_id INTEGER NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
INSERT INTO settings_history SELECT name, value, source, run_id, changed_at FROM catalogue_settings;

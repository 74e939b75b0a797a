-- The settings an archive is indexed with (path pattern, species, thresholds...), kept in the
-- catalogue so that a run from cron or another folder decides and exports as it was indexed.
-- value is JSON; source is where it came from (a settings file or a FINPRINT_* variable).
CREATE TABLE catalogue_settings (
    name VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    run_id INTEGER NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);

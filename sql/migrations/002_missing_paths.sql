-- A path whose file disappeared is kept (its photo's history stays) and marked missing.
ALTER TABLE photo_paths ADD COLUMN missing_since TIMESTAMPTZ;

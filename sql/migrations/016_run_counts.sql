-- A run's counts as its log line, its --json and its report all give them, read from the
-- catalogue once the night's grouping is done (run_counts.sql): photos matched and to review,
-- and how many earlier individuals were re-sighted. NULL for runs finished before.
ALTER TABLE runs ADD COLUMN photos_matched INTEGER;
ALTER TABLE runs ADD COLUMN photos_review INTEGER;
ALTER TABLE runs ADD COLUMN individuals_resighted INTEGER;

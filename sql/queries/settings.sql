-- The settings this catalogue keeps (what a run from cron or another folder is decided with),
-- with where each value came from and when. Settings not listed are finprint's defaults.
SELECT name, value, source, run_id, changed_at FROM catalogue_settings ORDER BY name;

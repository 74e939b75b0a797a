-- One run's counts once its night is done, as the log, --json and the report give them: the
-- individuals it created that still hold a photo (after the night's groups folded some), the
-- photos it filed as re-sightings or for review, and the individuals those re-sightings are of.
SELECT
    (SELECT count(*) FROM individuals i
     WHERE i.created_run = $run_id AND i.merged_into IS NULL
       AND EXISTS (SELECT 1 FROM sightings s WHERE s.individual_id = i.individual_id)) AS individuals_new,
    count(*) FILTER (WHERE status = 'matched') AS photos_matched,
    count(*) FILTER (WHERE status = 'review') AS photos_review,
    count(DISTINCT individual_id) FILTER (WHERE status = 'matched') AS individuals_resighted
FROM sightings
WHERE run_id = $run_id;

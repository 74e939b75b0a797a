-- Life history of one individual, following flank links: every sighting, oldest first. taken_at
-- is the camera's time, NULL where the photo has none (its survey_date is then all that is known:
-- no midnight is invented for it).
SELECT
    p.taken_at,
    p.survey_date,
    p.site,
    p.camera,
    p.side,
    p.crop,
    (SELECT min(pp.path) FROM photo_paths pp WHERE pp.photo_id = p.photo_id) AS path,
    s.distance,
    s.status,
    s.run_id,
    s.individual_id
FROM sightings s
JOIN photos p USING (photo_id)
WHERE s.individual_id IN (
    SELECT individual_id FROM individuals
    WHERE coalesce(fish_id, individual_id) =
        (SELECT coalesce(fish_id, individual_id) FROM individuals WHERE individual_id = $individual_id)
)
ORDER BY coalesce(p.taken_at, CAST(p.survey_date AS TIMESTAMP)) NULLS LAST, path;

-- Life history of one individual, following flank links: every sighting, oldest first.
SELECT
    coalesce(p.taken_at, CAST(p.survey_date AS TIMESTAMP)) AS taken_at,
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
ORDER BY taken_at NULLS LAST, path;

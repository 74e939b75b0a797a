-- One individual's summary: first and last seen, sites, sighting count.
SELECT
    i.individual_id,
    i.name,
    i.side,
    i.crop,
    count(s.photo_id) AS sightings,
    min(coalesce(p.taken_at, CAST(p.survey_date AS TIMESTAMP))) AS first_seen,
    max(coalesce(p.taken_at, CAST(p.survey_date AS TIMESTAMP))) AS last_seen,
    list(DISTINCT p.site ORDER BY p.site) FILTER (WHERE p.site IS NOT NULL) AS sites
FROM individuals i
LEFT JOIN sightings s USING (individual_id)
LEFT JOIN photos p USING (photo_id)
WHERE i.individual_id = $individual_id
GROUP BY ALL;

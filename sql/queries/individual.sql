-- One individual's summary, with the entries linked to it as the same fish: first and last seen, sites, count.
SELECT
    i.individual_id,
    i.name,
    i.side,
    i.crop,
    (SELECT list(o.individual_id ORDER BY o.individual_id) FROM individuals o
     WHERE o.individual_id <> i.individual_id
       AND coalesce(o.fish_id, o.individual_id) = coalesce(i.fish_id, i.individual_id)) AS linked,
    count(s.photo_id) AS sightings,
    min(coalesce(p.taken_at, CAST(p.survey_date AS TIMESTAMP))) AS first_seen,
    max(coalesce(p.taken_at, CAST(p.survey_date AS TIMESTAMP))) AS last_seen,
    list(DISTINCT p.site ORDER BY p.site) FILTER (WHERE p.site IS NOT NULL) AS sites
FROM individuals i
LEFT JOIN individuals m ON coalesce(m.fish_id, m.individual_id) = coalesce(i.fish_id, i.individual_id)
LEFT JOIN sightings s ON s.individual_id = m.individual_id
LEFT JOIN photos p USING (photo_id)
WHERE i.individual_id = $individual_id
GROUP BY ALL;

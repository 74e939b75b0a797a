-- Individuals seen at more than one site: the movements between sites.
SELECT
    s.individual_id,
    list(DISTINCT p.site ORDER BY p.site) AS sites,
    min(p.survey_date) AS first_seen,
    max(p.survey_date) AS last_seen,
    count(*) AS sightings
FROM sightings s
JOIN photos p USING (photo_id)
WHERE p.site IS NOT NULL
GROUP BY s.individual_id
HAVING count(DISTINCT p.site) > 1
ORDER BY s.individual_id;

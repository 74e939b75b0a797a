-- Individuals with first and last sighting, sites and counts; filter by $site and $since (NULL: all).
SELECT
    i.individual_id,
    i.name,
    i.side,
    i.crop,
    count(*) AS sightings,
    min(coalesce(p.survey_date, CAST(p.taken_at AS DATE))) AS first_seen,
    max(coalesce(p.survey_date, CAST(p.taken_at AS DATE))) AS last_seen,
    list(DISTINCT p.site ORDER BY p.site) FILTER (WHERE p.site IS NOT NULL) AS sites
FROM individuals i
JOIN sightings s USING (individual_id)
JOIN photos p USING (photo_id)
WHERE ($site IS NULL OR p.site = $site)
  AND ($since IS NULL OR coalesce(p.survey_date, CAST(p.taken_at AS DATE)) >= CAST($since AS DATE))
GROUP BY ALL
ORDER BY i.individual_id;

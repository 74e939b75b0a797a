-- Individuals seen per site and survey date.
SELECT
    p.site,
    p.survey_date,
    count(DISTINCT s.individual_id) AS individuals,
    count(*) AS photos
FROM sightings s
JOIN photos p USING (photo_id)
GROUP BY ALL
ORDER BY p.survey_date, p.site;

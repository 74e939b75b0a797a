-- Individuals seen on more than one survey date, with the days between first and last sighting.
SELECT
    s.individual_id,
    count(DISTINCT coalesce(p.survey_date, CAST(p.taken_at AS DATE))) AS survey_days,
    min(coalesce(p.survey_date, CAST(p.taken_at AS DATE))) AS first_seen,
    max(coalesce(p.survey_date, CAST(p.taken_at AS DATE))) AS last_seen,
    date_diff('day', min(coalesce(p.survey_date, CAST(p.taken_at AS DATE))),
              max(coalesce(p.survey_date, CAST(p.taken_at AS DATE)))) AS days_between
FROM sightings s
JOIN photos p USING (photo_id)
GROUP BY s.individual_id
HAVING count(DISTINCT coalesce(p.survey_date, CAST(p.taken_at AS DATE))) > 1
ORDER BY days_between DESC, s.individual_id;

-- One row per sighting (a photo's identification), for Darwin Core, capture histories and GeoJSON.
-- Filters are NULL when not given: $since/$until (dates, inclusive), $site, $individual, $side.
SELECT
    s.photo_id,
    s.individual_id,
    -- The animal: entries a person linked (two flanks, a head and a body crop) share one.
    coalesce(i.fish_id, i.individual_id) AS animal_id,
    i.name AS individual_name,
    s.status,
    s.distance,
    p.taken_at,
    p.taken_at_utc_offset,
    coalesce(p.survey_date, CAST(p.taken_at AS DATE)) AS survey_date,
    p.site,
    p.latitude,
    p.longitude,
    p.side,
    p.crop,
    (SELECT min(pp.path) FROM photo_paths pp WHERE pp.photo_id = s.photo_id) AS path,
    r.model_version,
    s.run_id,
    -- Who last decided this photo's identity, where a decision did (a login, or finprint).
    (SELECT d.decided_by FROM decisions d
     WHERE list_contains(d.photo_ids, s.photo_id) AND d.undone_at IS NULL
     ORDER BY d.decision_id DESC LIMIT 1) AS decided_by
FROM sightings s
JOIN photos p USING (photo_id)
JOIN individuals i USING (individual_id)
JOIN runs r ON r.run_id = s.run_id
WHERE ($since IS NULL OR coalesce(p.survey_date, CAST(p.taken_at AS DATE)) >= CAST($since AS DATE))
  AND ($until IS NULL OR coalesce(p.survey_date, CAST(p.taken_at AS DATE)) <= CAST($until AS DATE))
  AND ($site IS NULL OR p.site = $site)
  AND ($individual IS NULL OR s.individual_id = $individual)
  AND ($side IS NULL OR p.side = $side)
ORDER BY survey_date NULLS LAST, p.taken_at NULLS LAST, s.individual_id, s.photo_id;

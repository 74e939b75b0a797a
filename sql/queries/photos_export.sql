-- One row per photo path, with its identification: the columns of `finprint export csv|json|parquet`.
-- A path whose file is gone is left out where the photo has a path still there (a renamed folder or
-- a moved file is one photo, listed once, where it is now); a photo with no path left keeps its rows.
-- Filters are NULL when not given: $since/$until (dates, inclusive), $site, $individual, $side.
SELECT
    pp.path,
    s.individual_id,
    p.taken_at,
    p.site,
    p.side,
    s.distance,
    s.status,
    coalesce(p.survey_date, CAST(p.taken_at AS DATE)) AS survey_date,
    p.crop,
    p.camera,
    p.latitude,
    p.longitude,
    p.photo_id,
    p.photo_id AS sha256,
    s.run_id,
    -- The model of the run that made the sighting: a photo has one embedding per model while a
    -- reindex is under way, and joining embeddings would then give it two rows.
    r.model_version,
    -- The camera's EXIF OffsetTimeOriginal ("+02:00"); taken_at is its local clock time.
    p.taken_at_utc_offset
FROM photo_paths pp
JOIN photos p USING (photo_id)
LEFT JOIN sightings s USING (photo_id)
LEFT JOIN runs r ON r.run_id = s.run_id
WHERE ($since IS NULL OR coalesce(p.survey_date, CAST(p.taken_at AS DATE)) >= CAST($since AS DATE))
  AND ($until IS NULL OR coalesce(p.survey_date, CAST(p.taken_at AS DATE)) <= CAST($until AS DATE))
  AND ($site IS NULL OR p.site = $site)
  AND ($individual IS NULL OR s.individual_id = $individual)
  AND ($side IS NULL OR p.side = $side)
  AND (pp.missing_since IS NULL OR NOT EXISTS (
      SELECT 1 FROM photo_paths here WHERE here.photo_id = pp.photo_id AND here.missing_since IS NULL))
ORDER BY pp.path;

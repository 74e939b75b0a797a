-- One row per photo path, with its identification: the columns of `finprint export csv`.
SELECT
    pp.path,
    s.individual_id,
    p.taken_at,
    p.site,
    p.side,
    s.distance,
    s.status,
    p.survey_date,
    p.crop,
    p.camera,
    p.latitude,
    p.longitude,
    p.photo_id,
    s.run_id
FROM photo_paths pp
JOIN photos p USING (photo_id)
LEFT JOIN sightings s USING (photo_id)
ORDER BY pp.path;

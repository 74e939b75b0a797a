-- Sightings waiting for a person: near the threshold, or close to two individuals.
SELECT
    s.photo_id,
    (SELECT min(pp.path) FROM photo_paths pp WHERE pp.photo_id = s.photo_id) AS path,
    s.individual_id,
    s.distance,
    s.probability,
    s.second_individual_id,
    s.second_distance,
    (SELECT min(pp.path) FROM photo_paths pp WHERE pp.photo_id = s.matched_photo_id) AS matched_path,
    s.run_id
FROM sightings s
WHERE s.status = 'review'
ORDER BY s.run_id, s.distance, path;

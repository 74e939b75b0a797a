-- The sightings a run made, with the photo each one matched.
SELECT
    s.individual_id,
    s.status,
    s.distance,
    s.decision_distance,
    s.second_individual_id,
    s.second_distance,
    s.probability,
    (SELECT min(pp.path) FROM photo_paths pp WHERE pp.photo_id = s.photo_id) AS path,
    (SELECT min(pp.path) FROM photo_paths pp WHERE pp.photo_id = s.matched_photo_id) AS matched_path,
    s.inliers,
    s.photo_id,
    s.matched_photo_id
FROM sightings s
WHERE s.run_id = $run_id
ORDER BY s.status, s.individual_id, path;

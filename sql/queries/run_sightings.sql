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
    s.matched_photo_id,
    s.keypoint_lines,
    s.caution,
    -- The latest decision still standing that moved this photo (a person's, or tonight's group).
    (SELECT d.action FROM decisions d
     WHERE list_contains(d.photo_ids, s.photo_id) AND d.undone_at IS NULL
     ORDER BY d.decision_id DESC LIMIT 1) AS decision_action
FROM sightings s
WHERE s.run_id = $run_id
ORDER BY s.status, s.individual_id, path;

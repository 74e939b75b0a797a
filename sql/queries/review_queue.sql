-- Sightings waiting for a person: near the threshold, or close to two individuals, with what was proposed.
-- `now_in` is where the photo is catalogued now; `proposed` is the individual of its nearest
-- catalogued photo (`matched_path`). Each question has one answer per command: `finprint confirm`
-- says the proposal is right (a match stays, confirmed; a photo kept apart joins PROPOSED) and
-- `finprint reject` says it is wrong (a match becomes a new individual; a photo kept apart stays).
SELECT
    left(s.photo_id, 8) AS photo,
    (SELECT min(pp.path) FROM photo_paths pp WHERE pp.photo_id = s.photo_id) AS path,
    s.individual_id AS now_in,
    m.individual_id AS proposed,
    CASE
        WHEN m.individual_id IS NULL THEN 'new individual, nothing near enough'
        WHEN m.individual_id = s.individual_id THEN 'joined ' || m.individual_id || ': is it?'
        ELSE 'kept apart from ' || m.individual_id || ': same fish?'
    END || CASE s.caution
        WHEN 'one_photograph' THEN ' (one photograph seen twice: the same pixels as its earlier photo)'
        WHEN 'beyond_reach' THEN ' (keypoints agree, the embedding does not)'
        ELSE ''
    END AS question,
    s.distance,
    s.probability,
    s.inliers,
    s.second_individual_id,
    s.second_distance,
    (SELECT min(pp.path) FROM photo_paths pp WHERE pp.photo_id = s.matched_photo_id) AS matched_path,
    p.site,
    coalesce(p.survey_date, CAST(p.taken_at AS DATE)) AS survey_date,
    s.run_id
FROM sightings s
JOIN photos p USING (photo_id)
LEFT JOIN sightings m ON m.photo_id = s.matched_photo_id
WHERE s.status = 'review'
ORDER BY s.run_id, s.distance, path;

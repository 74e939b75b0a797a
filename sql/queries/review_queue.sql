-- Sightings waiting for a person: near the threshold, or close to two individuals, with what was proposed.
-- `now_in` is where the photo is catalogued now; `proposed` is the individual of its nearest
-- catalogued photo (`matched_path`). Each question has one answer per command: `finprint confirm`
-- says the proposal is right (a match stays, confirmed; a photo kept apart joins PROPOSED) and
-- `finprint reject` says it is wrong (a match becomes a new individual; a photo kept apart stays).
-- Paths are read for the queue's photos only (a per-row lookup reads every path: 3x slower at
-- 100,000 photos, and the browser review asks this for every pair).
WITH review AS (
    SELECT * FROM sightings WHERE status = 'review'
), paths AS (
    SELECT photo_id, min(path) AS path FROM photo_paths
    WHERE photo_id IN (SELECT photo_id FROM review UNION ALL SELECT matched_photo_id FROM review)
    GROUP BY photo_id
)
SELECT
    left(s.photo_id, 8) AS photo,
    own.path,
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
    matched.path AS matched_path,
    p.site,
    coalesce(p.survey_date, CAST(p.taken_at AS DATE)) AS survey_date,
    s.run_id,
    s.photo_id AS photo_id_full,
    s.matched_photo_id,
    s.caution
FROM review s
JOIN photos p USING (photo_id)
LEFT JOIN sightings m ON m.photo_id = s.matched_photo_id
LEFT JOIN paths own ON own.photo_id = s.photo_id
LEFT JOIN paths matched ON matched.photo_id = s.matched_photo_id
ORDER BY s.run_id, s.distance, own.path;

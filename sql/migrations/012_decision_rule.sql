-- Saying what decided. The rule a run decided by, in words (NULL: runs before this column); and
-- for a keypoint-verified sighting, the correspondences with the matched photo that were counted
-- (verify.DecisiveLines), so the HTML report draws those and no new matching of the two photos.
ALTER TABLE runs ADD COLUMN decision_rule VARCHAR;
ALTER TABLE sightings ADD COLUMN keypoint_lines BLOB;
-- Who made each decision: the login of the person who ran the command, or finprint for the
-- night's own (grouping, encounter links). NULL: decisions made before this column.
ALTER TABLE decisions ADD COLUMN decided_by VARCHAR;

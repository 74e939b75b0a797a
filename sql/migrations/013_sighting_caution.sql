-- Why keypoints that agreed were held back from a decision (vocabulary.Caution): the embedding
-- puts the two beyond the keypoints' reach, or they are one photograph seen twice. NULL: nothing
-- was held back, or the sighting predates this column.
ALTER TABLE sightings ADD COLUMN caution VARCHAR;

-- What the threshold was applied to, beside `distance` (to the matched photo): the same number,
-- except for an individual first seen in the same run, which is joined by average linkage (the
-- mean distance to its photos among the neighbours). Rows written before this column held that
-- decision distance in `distance`, so it is copied; their nearest-photo distance is not known.
ALTER TABLE sightings ADD COLUMN decision_distance DOUBLE;
UPDATE sightings SET decision_distance = distance;

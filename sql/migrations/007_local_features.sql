-- Keypoints and descriptors of each photo, described once for verification (catalog/verify.py).
-- `detector` names the detector and its settings; features of another detector are not compared.
CREATE TABLE local_features (
    photo_id TEXT PRIMARY KEY,
    detector TEXT NOT NULL,
    features BLOB NOT NULL
);
-- Keypoint inliers between the photo and the photo it matched (NULL: not verified).
ALTER TABLE sightings ADD COLUMN inliers INTEGER;

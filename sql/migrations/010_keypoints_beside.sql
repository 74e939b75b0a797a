-- Keypoints move to a SQLite file beside the catalogue (catalog/keypoint_store.py): DuckDB read
-- the whole blob column for every shortlist, so verification slowed as the catalogue grew. The
-- store copies the rows across before this runs.
DROP TABLE local_features;

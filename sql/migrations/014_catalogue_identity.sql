-- The catalogue's own id, written into its keypoints file too: a keypoints file that is missing
-- or made for another catalogue (a catalogue moved or copied without its own) is then said, not
-- silently replaced. keypoints_since: when keypoints were first kept for this catalogue (NULL: not
-- yet, or before this column: a missing file is then only noticed once keypoints are kept again).
CREATE TABLE catalogue_identity (
    catalogue_id VARCHAR NOT NULL,
    keypoints_since TIMESTAMPTZ
);
INSERT INTO catalogue_identity VALUES (CAST(uuid() AS VARCHAR), NULL);

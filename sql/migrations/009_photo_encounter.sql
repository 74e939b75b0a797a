-- The {encounter} path field of a photo (one fish seen once), so that a night resumed after a
-- kill links the encounters of the photos catalogued before the kill as well. NULL: none, or
-- catalogued before this column existed.
ALTER TABLE photos ADD COLUMN encounter VARCHAR;

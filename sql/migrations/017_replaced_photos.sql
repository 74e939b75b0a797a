-- A photo file rewritten in place with the same picture (EXIF or GPS written, a re-export) is a
-- new photo id (the sha256 of its bytes) that takes over the old one's sighting; the old photo
-- stays, with no path and no sighting, pointing to its successor. NULL: not replaced.
ALTER TABLE photos ADD COLUMN replaced_by VARCHAR;

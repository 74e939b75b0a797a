-- EXIF OffsetTimeOriginal ("+02:00"): taken_at stays the camera's local clock time.
ALTER TABLE photos ADD COLUMN taken_at_utc_offset VARCHAR;

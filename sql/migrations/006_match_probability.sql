-- P(same individual) for the sighting's distance, from the model card's calibration (NULL: none).
ALTER TABLE sightings ADD COLUMN probability DOUBLE;

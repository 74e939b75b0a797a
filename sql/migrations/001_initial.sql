-- The first catalogue schema: runs, photos and their paths, embeddings, individuals, sightings, errors.

CREATE TABLE runs (
    run_id            INTEGER PRIMARY KEY,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    status            VARCHAR NOT NULL,          -- running | finished | interrupted
    model_version     VARCHAR NOT NULL,
    distance_threshold DOUBLE NOT NULL,
    finprint_version  VARCHAR NOT NULL,
    roots             VARCHAR[] NOT NULL,
    files_seen        INTEGER,
    photos_new        INTEGER,
    photos_failed     INTEGER,
    individuals_new   INTEGER,
    seconds_decode    DOUBLE,
    seconds_embed     DOUBLE,
    seconds_identify  DOUBLE,
    seconds_write     DOUBLE
);

-- One row per distinct photo content (sha256); several paths may show the same photo.
CREATE TABLE photos (
    photo_id     VARCHAR PRIMARY KEY,            -- sha256 of the file's bytes, hex
    width        INTEGER,
    height       INTEGER,
    taken_at     TIMESTAMP,
    latitude     DOUBLE,
    longitude    DOUBLE,
    survey_date  DATE,
    site         VARCHAR,
    camera       VARCHAR,
    side         VARCHAR,
    crop         VARCHAR,
    run_id       INTEGER NOT NULL
);

CREATE TABLE photo_paths (
    path         VARCHAR PRIMARY KEY,            -- as walked
    photo_id     VARCHAR NOT NULL,
    size_bytes   BIGINT NOT NULL,
    mtime_ns     BIGINT NOT NULL,
    run_id       INTEGER NOT NULL
);

CREATE TABLE embeddings (
    photo_id      VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    vector        FLOAT[] NOT NULL,
    PRIMARY KEY (photo_id, model_version)
);

CREATE TABLE individuals (
    individual_id VARCHAR PRIMARY KEY,           -- FP-000123, never renumbered
    number        INTEGER NOT NULL UNIQUE,
    side          VARCHAR,
    crop          VARCHAR,
    name          VARCHAR,
    created_run   INTEGER NOT NULL,
    first_photo_id VARCHAR NOT NULL
);

CREATE TABLE sightings (
    photo_id         VARCHAR PRIMARY KEY,
    individual_id    VARCHAR NOT NULL,
    run_id           INTEGER NOT NULL,
    status           VARCHAR NOT NULL,           -- new | matched | review
    distance         DOUBLE,                     -- to the nearest photo of that individual
    matched_photo_id VARCHAR,
    second_individual_id VARCHAR,                -- another individual also under the threshold
    second_distance  DOUBLE
);

CREATE TABLE errors (
    run_id      INTEGER NOT NULL,
    path        VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);

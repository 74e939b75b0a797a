-- Human decisions: recorded with time and reason, undoable, never overridden by an automatic run.
CREATE TABLE decisions (
    decision_id      INTEGER PRIMARY KEY,
    made_at          TIMESTAMPTZ NOT NULL,
    action           VARCHAR NOT NULL,   -- confirm | reject | merge | split | rename
    individual_id    VARCHAR,
    other_individual_id VARCHAR,
    photo_ids        VARCHAR[],
    name             VARCHAR,
    reason           VARCHAR,
    -- The rows as they were before, so the decision can be undone.
    previous         JSON NOT NULL,
    undone_at        TIMESTAMPTZ
);

-- An individual folded into another by a merge keeps its id, pointing at the survivor.
ALTER TABLE individuals ADD COLUMN merged_into VARCHAR;

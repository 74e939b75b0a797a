-- Every decision, newest first: who made it (a person's login, or finprint for the night's own),
-- and the photos it moved by the first 12 characters of their ids (any 8 or more name a photo in
-- every command; the decisions table keeps the whole ids).
SELECT decision_id, made_at, action, individual_id, other_individual_id,
       [left(p, 12) FOR p IN photo_ids] AS photos,
       name, reason, coalesce(decided_by, '-') AS decided_by, undone_at
FROM decisions
ORDER BY decision_id DESC;

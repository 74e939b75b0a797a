-- Every human decision, newest first.
SELECT decision_id, made_at, action, individual_id, other_individual_id, photo_ids, name, reason, undone_at
FROM decisions
ORDER BY decision_id DESC;

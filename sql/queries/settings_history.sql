-- Every change of a kept setting, oldest first; value NULL: reset to finprint's default.
SELECT changed_at, name, value, source, run_id FROM settings_history ORDER BY changed_at, name;

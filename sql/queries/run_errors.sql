-- Photos a run could not read, and why.
SELECT path, reason FROM errors WHERE run_id = $run_id ORDER BY path;

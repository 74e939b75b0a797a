-- One run's row, for the run report.
SELECT * FROM runs WHERE run_id = $run_id;

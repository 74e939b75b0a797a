-- The model card a run decided with (its JSON): a card edited without a new model_version (its
-- input normalisation, or its threshold) is then noticed by the next night. NULL: runs before.
ALTER TABLE runs ADD COLUMN model_card VARCHAR;

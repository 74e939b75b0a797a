-- Catalogue entries of one fish (left and right flank, head and body crop) linked by a person
-- share a fish_id: the smallest individual_id among them. NULL: not linked.
ALTER TABLE individuals ADD COLUMN fish_id VARCHAR;

-- Downstream audiences a skill's delegate client may exchange tokens toward (space-separated
-- absolute URIs; empty: none).
ALTER TABLE skills ADD COLUMN delegate_audiences TEXT NOT NULL DEFAULT '';

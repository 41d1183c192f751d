ALTER TABLE skills ADD COLUMN client_id TEXT;

ALTER TABLE skills DROP COLUMN client_id;

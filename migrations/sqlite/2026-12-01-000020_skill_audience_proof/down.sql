ALTER TABLE skills DROP COLUMN proof_error;
ALTER TABLE skills DROP COLUMN proven_at;

-- When an owner-created skill last proved its audience (RFC 9728 metadata naming Patron),
-- and why its last attempt failed. Admin-created skills need no proof.
ALTER TABLE skills ADD COLUMN proven_at BIGINT;
ALTER TABLE skills ADD COLUMN proof_error TEXT;

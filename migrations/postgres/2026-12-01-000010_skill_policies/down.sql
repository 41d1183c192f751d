ALTER TABLE skills DROP COLUMN policy_needs_review;
ALTER TABLE skills DROP COLUMN grant_policy;

-- Grant policies: whose agents may hold grants for a skill. Skills that exist before this
-- change admit anyone (as before) and are flagged for their operator to choose a policy.
ALTER TABLE skills ADD COLUMN grant_policy TEXT NOT NULL DEFAULT '["any"]';
ALTER TABLE skills ADD COLUMN policy_needs_review BOOLEAN NOT NULL DEFAULT TRUE;

-- Who suspended an agent: 'admin' (the admin API, CLI or a console admin) or 'owner'.
-- Only an admin lifts an admin's suspension. Agents suspended before this change have
-- NULL, which counts as the owner's suspension (as before, anyone who sees them resumes).
ALTER TABLE clients ADD COLUMN suspended_by TEXT;

DROP TABLE audit_events;
DROP TABLE revoked_tokens;
DROP TABLE signing_keys;
DROP TABLE enrollment_tokens;
DROP TABLE grants;
DROP TABLE skills;
DROP TABLE clients;
DROP TABLE owners;

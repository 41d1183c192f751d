-- The RFC 7638 thumbprints of a client's keys, so that an agent registering again with the
-- same keys from the same address while still pending gets its registration back. The
-- lookup is by both columns: an index on the thumbprints alone would make each registration
-- scan every row sharing a key (many pending registrations of one key from many addresses).
ALTER TABLE clients ADD COLUMN key_thumbprints TEXT;
CREATE INDEX clients_key_thumbprints_source_idx ON clients (key_thumbprints, source_addr);

-- The RFC 7638 thumbprints of a client's keys, so that an agent registering again with the
-- same keys from the same address while still pending gets its registration back.
ALTER TABLE clients ADD COLUMN key_thumbprints TEXT;
CREATE INDEX clients_key_thumbprints_idx ON clients (key_thumbprints);

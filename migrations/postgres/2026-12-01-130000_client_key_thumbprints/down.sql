DROP INDEX clients_key_thumbprints_source_idx;
ALTER TABLE clients DROP COLUMN key_thumbprints;

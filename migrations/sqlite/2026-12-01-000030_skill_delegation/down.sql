ALTER TABLE skills DROP COLUMN delegate_audiences;

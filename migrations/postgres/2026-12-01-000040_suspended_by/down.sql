ALTER TABLE clients DROP COLUMN suspended_by;

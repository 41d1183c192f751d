-- Retention deletes audit events by age; without this index each sweep scans the table.
CREATE INDEX audit_events_at_idx ON audit_events (at);

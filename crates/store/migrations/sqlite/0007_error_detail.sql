-- A failed probe's whole error chain, kept beside `last_error`, which from this migration on
-- holds a short cause for people ("connection refused", "timed out after 5 s", "HTTP 503").
ALTER TABLE servers ADD COLUMN last_error_detail TEXT;

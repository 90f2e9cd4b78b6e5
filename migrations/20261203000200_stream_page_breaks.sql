-- Where each output page of a stream ended when it was last shown ({"attempt": n, "at": [byte offsets]}): a
-- live page that fills up ends there, so any replica continuing the stream splits the output the same way.
ALTER TABLE stream_records ADD COLUMN page_breaks jsonb NOT NULL DEFAULT '{}'::jsonb;

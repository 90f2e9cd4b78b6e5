-- An `embed` job's vectors (`jobs.result -> 'embeddings'`) are read once, by the waiting embedder, within its
-- timeout. The memory worker removes them from results older than ten minutes (long after any finish retry of the
-- node), so recall queries do not grow the jobs table by a few kilobytes each for good; this index finds them.
CREATE INDEX jobs_embed_results_idx ON jobs (finished_at) WHERE result ? 'embeddings';

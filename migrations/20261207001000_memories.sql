-- Memory: what a team told its agent, scoped, with provenance, recalled by full text and by vector (pgvector).

CREATE EXTENSION IF NOT EXISTS vector;

-- The first schema's placeholder table (content + one vector(384), no scope) was never written by CyNode. It is
-- replaced; should an operator have put rows into it by hand, they are kept as `memories_v1_legacy`.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM memories) THEN
        ALTER TABLE memories RENAME TO memories_v1_legacy;
        ALTER INDEX memories_embedding_idx RENAME TO memories_v1_legacy_embedding_idx;
        ALTER TABLE memories_v1_legacy RENAME CONSTRAINT memories_pkey TO memories_v1_legacy_pkey;
    ELSE
        DROP TABLE memories;
    END IF;
END
$$;

-- One memory. Who may see it is decided by (install_id, scope, channel, thread, user_id), always in SQL:
--   shared   every install (install_id NULL; written by an admin of the deployment or an import)
--   install  everyone in the install (writing one needs an approver of the install)
--   channel  the channel's conversations (any thread)
--   thread   that thread only
--   user     that user only (a private memory), in that install
-- `embedding` holds one vector from `embedding_model`; its dimension is fixed per model (`memory_models`), and
-- each model has a partial HNSW index on `embedding::vector(dims)` (see `cynode_memory_index`), so a search never
-- becomes a sequential scan because models of different sizes share the column.
CREATE TABLE memories (
    id              uuid PRIMARY KEY,
    install_id      uuid REFERENCES installs (id),
    scope           text NOT NULL CHECK (scope IN ('shared', 'install', 'channel', 'thread', 'user')),
    channel         text,
    thread          text,
    user_id         text,
    -- Who wrote it (platform user id, API token name, `agent:<turn>`).
    author          text NOT NULL,
    text            text NOT NULL CHECK (length(text) BETWEEN 1 AND 4000),
    provenance      text NOT NULL CHECK (provenance IN ('user', 'agent', 'tool', 'import', 'admin')),
    -- Where it came from: a conversation (thread), the platform message (its inbound event), a job, or a free
    -- label (an import's name).
    source_conversation uuid REFERENCES conversations (id),
    source_inbound  uuid,
    source_job      uuid,
    source_label    text,
    pinned          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED,
    embedding       vector,
    embedding_model text,
    embedded_at     timestamptz,
    -- Shared memories belong to no install; the others to one (none only for the local console).
    CHECK (scope <> 'shared' OR (install_id IS NULL AND channel IS NULL AND thread IS NULL AND user_id IS NULL)),
    CHECK (scope NOT IN ('channel', 'thread') OR channel IS NOT NULL),
    CHECK (scope <> 'thread' OR thread IS NOT NULL),
    CHECK (scope <> 'user' OR user_id IS NOT NULL),
    CHECK ((embedding IS NULL) = (embedding_model IS NULL))
);
CREATE INDEX memories_tsv_idx ON memories USING gin (tsv);
CREATE INDEX memories_scope_idx ON memories (install_id, scope, channel);
CREATE INDEX memories_user_idx ON memories (install_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX memories_author_idx ON memories (install_id, author);
CREATE INDEX memories_source_idx ON memories (source_conversation);
CREATE INDEX memories_expires_idx ON memories (expires_at) WHERE expires_at IS NOT NULL;
-- The embedding worker's queue: rows without a vector of the current model.
CREATE INDEX memories_unembedded_idx ON memories (created_at) WHERE embedding IS NULL;

-- The embedding models memories were embedded with, and their dimension (fixed once the first vector arrives).
CREATE TABLE memory_models (
    model       text PRIMARY KEY CHECK (length(model) BETWEEN 1 AND 200),
    dims        integer NOT NULL CHECK (dims BETWEEN 1 AND 16000),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Registers `model` with `dims` and creates its partial HNSW (cosine) index if missing; returns the dimension the
-- model is registered with (a caller whose vectors have another size must refuse them).
CREATE FUNCTION cynode_memory_index(p_model text, p_dims integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    registered integer;
BEGIN
    INSERT INTO memory_models (model, dims) VALUES (p_model, p_dims) ON CONFLICT (model) DO NOTHING;
    SELECT dims INTO registered FROM memory_models WHERE model = p_model;
    IF registered = p_dims THEN
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON memories USING hnsw ((embedding::vector(%s)) vector_cosine_ops) '
            'WHERE embedding_model = %L',
            'memories_hnsw_' || left(md5(p_model), 16), p_dims, p_model);
    END IF;
    RETURN registered;
END
$$;

-- The model the documentation and tests use: multilingual-e5-small (384-d).
SELECT cynode_memory_index('multilingual-e5-small', 384);

-- The agent turn: conversations kept in the store, turns as durable state machines, tool calls run at most once.

-- What was said in a conversation (a chat thread), oldest first: what CyNode received, what it answered, and
-- every tool call and result of its turns. The model's context is built from here, so it survives restarts and
-- works where a bot cannot read a thread's history (Telegram).
CREATE TABLE conversation_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    -- The turn that wrote it (assistant and tool messages), or that was running when a user message came in.
    turn_id         uuid,
    role            text NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    -- The platform user id of a user message.
    author          text,
    content         text NOT NULL DEFAULT '',
    -- An assistant message's tool calls: [{id, name, arguments}].
    tool_calls      jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- The call a tool message answers.
    tool_call_id    text,
    -- An assistant message's place: after the last message the model saw when its step began (messages that
    -- came in while the model wrote follow it and its tool results).
    seen_upto       bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_messages_conv_idx ON conversation_messages (conversation_id, id);

-- One agent turn: free text in a thread → [model step → tool calls → results]* → answer. Every step is committed
-- here; the replica driving a turn holds it until `claimed_until` under `claim_token`, and every write of a step
-- is fenced by that token, so a crashed replica's turn is resumed by another one.
CREATE TABLE agent_turns (
    id              uuid PRIMARY KEY,
    -- The task the user's message created; its reply is what the thread shows.
    task_id         uuid NOT NULL UNIQUE REFERENCES tasks (id),
    -- The task that owns the turn's model jobs (source 'agent', no stream of its own).
    steps_task_id   uuid NOT NULL REFERENCES tasks (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    install_id      uuid REFERENCES installs (id),
    requester       text NOT NULL,
    state           text NOT NULL DEFAULT 'running'
                    CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    -- 'model': a model step is due or running (`model_job`); 'tools': the last step's tool calls are running.
    phase           text NOT NULL DEFAULT 'model' CHECK (phase IN ('model', 'tools')),
    step            integer NOT NULL DEFAULT 0,
    max_steps       integer NOT NULL,
    max_output_tokens integer NOT NULL,
    deadline        timestamptz NOT NULL,
    model_job       uuid REFERENCES jobs (id),
    -- The last conversation message the running model step sees.
    seen_upto       bigint,
    -- Failed model steps retried in this turn.
    retries         integer NOT NULL DEFAULT 0,
    tokens_in       bigint NOT NULL DEFAULT 0,
    tokens_out      bigint NOT NULL DEFAULT 0,
    -- Why the turn ended, when it did not end with an answer.
    error           text,
    cancel_requested boolean NOT NULL DEFAULT false,
    claim_token     uuid,
    claimed_until   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
-- One turn per thread at a time: messages that arrive meanwhile join the conversation and are seen at the next step.
CREATE UNIQUE INDEX agent_turns_one_running_idx ON agent_turns (conversation_id) WHERE state = 'running';
CREATE INDEX agent_turns_claim_idx ON agent_turns (claimed_until) WHERE state = 'running';

-- The tool calls of a turn's steps. The key (turn, step, index) makes each call run at most once: its job is
-- created with a task whose id is derived from that key.
CREATE TABLE agent_tool_calls (
    turn_id         uuid NOT NULL REFERENCES agent_turns (id),
    step            integer NOT NULL,
    idx             integer NOT NULL,
    call_id         text NOT NULL,
    name            text NOT NULL,
    arguments       text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done')),
    job_id          uuid REFERENCES jobs (id),
    -- What the model is told (bounded), and a one-line summary for the thread (`run_command ls → exit 0`).
    result          text,
    summary         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (turn_id, step, idx)
);

//! Command-line interface of the `cynode` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// CyNode: a chat-ops gateway that runs your team's commands and agents from Slack, Discord, Telegram and
/// webhooks, and streams the results back into the same thread.
#[derive(Debug, Parser)]
#[command(name = "cynode", version, propagate_version = true)]
pub struct Cli {
    /// YAML configuration file (see docs/configuration.md).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One machine, zero set-up: a private PostgreSQL (unless DATABASE_URL is set), the gateway and a node agent.
    Up(RunArgs),
    /// Production: the gateway against the PostgreSQL in DATABASE_URL (stateless; run several replicas).
    Serve(RunArgs),
    /// Apply pending database migrations to DATABASE_URL and exit.
    Migrate,
    /// Print a fresh master key for `security.master_key` (32 random bytes, base64).
    Keygen,
    /// Submit a command (`run echo hi`, `ask …`, `status`) through the API and stream the reply live.
    /// Exit code: 0 success, 1 the job failed, 2 usage or API error, 3 timed out or cancelled.
    Say(SayArgs),
    /// List recent tasks.
    Tasks(TasksArgs),
    /// Print a job's output (`-f` follows it live).
    Logs(LogsArgs),
    /// List registered nodes.
    Nodes(ClientArgs),
    /// Model tokens per UTC day from the usage ledger (a tenant token sees its install only).
    Usage(UsageArgs),
    /// Outbound webhook subscriptions: add, list, test, replay, rotate, remove.
    #[command(subcommand)]
    Subs(SubsCommand),
    /// Memories, as the token's identity: add, search, list, forget, import.
    #[command(subcommand)]
    Memory(MemoryCommand),
    /// Administration straight on the database (DATABASE_URL, or the data directory of a running `cynode up`).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// CyNode users: link chat identities and API tokens to a user, list and show them (on the database).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Policy as code (Rego): test a policy file locally, import it, explain a job's decision.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The hash-chained audit log, straight on the database: verify it, export it, make a checkpoint key.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `cynode users`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Link a chat identity (--install and --user) or an API token (--token) to a user (created when new).
    Link {
        /// The CyNode user's name.
        name: String,
        /// Install id, name or external id of the chat identity.
        #[arg(long, requires = "user", conflicts_with = "token")]
        install: Option<String>,
        /// The platform's user id (Slack `U…`, a Discord or Telegram id).
        #[arg(long, requires = "install")]
        user: Option<String>,
        /// Display name for the identity (default: the name the platform sends).
        #[arg(long)]
        display_name: Option<String>,
        /// API token id or name.
        #[arg(long, required_unless_present = "install")]
        token: Option<String>,
    },
    /// List users with their identities, tokens and roles.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        /// Name or id.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `cynode admin role`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Grant a chat user a role in an install (or in one channel of it).
    Set {
        /// Install id, name or external id.
        install: String,
        /// The platform's user id.
        user: String,
        /// admin, approver, member, viewer or none.
        role: String,
        /// Only in this channel (overrides the install-wide role there).
        #[arg(long)]
        channel: Option<String>,
    },
    /// Remove a chat user's role grant in an install (or its override in one channel).
    Remove {
        /// Install id, name or external id.
        install: String,
        /// The platform's user id.
        user: String,
        /// The override in this channel (default: the install-wide grant).
        #[arg(long)]
        channel: Option<String>,
    },
    /// List role grants.
    List {
        /// Only this install (id, name or external id).
        #[arg(long)]
        install: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `cynode policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate FILE (Rego, `package cynode`) for the input in INPUT.json and print the decision (no database).
    Test {
        /// The Rego policy.
        file: PathBuf,
        /// The input document (JSON), as `cynode policy explain` shows it.
        input: PathBuf,
    },
    /// Check and store FILE as the policy of an install (or of all installs); a syntax error names file and line.
    Import {
        /// The Rego policy.
        file: PathBuf,
        /// Install id, name or external id (default: every install without its own policy).
        #[arg(long)]
        install: Option<String>,
        /// shadow (record what it would decide) or enforce.
        #[arg(long, default_value = "shadow")]
        mode: String,
        /// What an evaluation error does in enforce mode: closed (refuse the job) or open (built-in rules decide).
        #[arg(long, default_value = "closed")]
        on_error: String,
    },
    /// Show the policy input of a job's request and what the policy in force decides for it.
    Explain {
        /// Job id (or its first characters).
        job: String,
    },
}

/// `cynode audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the chain and its signed checkpoints; name the first broken link (exit code 1 when broken).
    Verify {
        /// Public key (base64) trusted for checkpoints; default security.audit_public_key, else the public half
        /// of security.audit_signing_key.
        #[arg(long, value_name = "BASE64")]
        public_key: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write entries as JSON lines (one object per line, oldest first).
    Export {
        /// From: RFC 3339 time or an age such as 30m, 2h, 7d.
        #[arg(long, value_name = "WHEN")]
        since: String,
        /// Until (exclusive; default now): RFC 3339 time or an age.
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
    },
    /// Sign a checkpoint of the chain head now (with security.audit_signing_key).
    Checkpoint,
    /// Print a fresh checkpoint signing key for security.audit_signing_key (its public key goes to stderr).
    Keygen,
}

/// How the client commands reach the API. `--url` and `--token` may also come from the environment
/// (`CYNODE_URL`, `CYNODE_TOKEN`): they are read here, through clap, as part of the command line.
#[derive(Debug, Args, Clone, Default)]
pub struct ClientArgs {
    /// Base URL of the gateway.
    #[arg(long, env = "CYNODE_URL", default_value = "http://127.0.0.1:8080", value_name = "URL")]
    pub url: String,
    /// API token (`cyn_…`); without it, the local token of a `cynode up` data directory is used.
    #[arg(long, env = "CYNODE_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Machine-readable output (JSON; one JSON object per line for streams).
    #[arg(long)]
    pub json: bool,
    /// CyNode data directory holding the local token (default: .cynode, or /var/lib/cynode as root).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `cynode say`.
#[derive(Debug, Args)]
pub struct SayArgs {
    /// The command, as you would write it in chat (quote it).
    #[arg(required = true, num_args = 1.., value_name = "COMMAND")]
    pub text: Vec<String>,
    /// Give up waiting after this many seconds (exit code 3).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub timeout: u64,
    /// API access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `cynode tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// How many (1–100).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// API access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `cynode usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The last N UTC days, today included (1–366).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
    /// One row per day and this.
    #[arg(long, value_enum, default_value_t = UsageGroup::Install)]
    pub by: UsageGroup,
    /// API access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `cynode usage` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UsageGroup {
    /// Per install.
    Install,
    /// Per requester of an install.
    Requester,
    /// Per channel of an install.
    Channel,
    /// Per model.
    Model,
}

/// `cynode logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Job id.
    pub job: String,
    /// Follow the output until the job ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Attempt (default: the latest).
    #[arg(long)]
    pub attempt: Option<u32>,
    /// API access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `cynode subs`. Subscriptions are named by id or name.
#[derive(Debug, Subcommand)]
pub enum SubsCommand {
    /// Subscribe URL to events; prints the signing secret (shown only once).
    Add {
        /// Receiver URL (http or https).
        #[arg(value_name = "URL")]
        endpoint: String,
        /// Event types, comma-separated (default: every type except job.output).
        #[arg(long, value_delimiter = ',', value_name = "TYPES")]
        events: Vec<String>,
        /// Unique name (default: derived from the URL's host).
        #[arg(long)]
        name: Option<String>,
        /// Owner install id (global tokens only; a token limited to an install always uses its own).
        #[arg(long, value_name = "INSTALL_ID")]
        install: Option<uuid::Uuid>,
        /// Filter on top-level event fields, as JSON, e.g. '{"template":"python"}'.
        #[arg(long, value_name = "JSON")]
        filter: Option<String>,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List subscriptions.
    List(ClientArgs),
    /// Show one subscription.
    Show {
        /// Subscription id or name.
        sub: String,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send a `ping` message and wait for its outcome.
    Test {
        /// Subscription id or name.
        sub: String,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Recent deliveries of a subscription.
    Deliveries {
        /// Subscription id or name.
        sub: String,
        /// Only pending, delivered, failed or dead ones.
        #[arg(long)]
        state: Option<String>,
        /// How many (1–1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Resend one delivery (by delivery id), or with --since the failed deliveries of a subscription in a range.
    Replay {
        /// A delivery id; with --since, a subscription id or name.
        target: String,
        /// Start of the range: RFC 3339 time or an age such as 30m, 2h, 1d.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// End of the range (default now): RFC 3339 time or an age.
        #[arg(long, value_name = "WHEN", requires = "since")]
        until: Option<String>,
        /// Also resend deliveries the receiver accepted.
        #[arg(long, requires = "since")]
        include_delivered: bool,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Rotate the signing secret; prints the new one. The old one keeps signing for the grace period.
    Rotate {
        /// Subscription id or name.
        sub: String,
        /// Grace period: seconds or 30m, 12h, 1d (default 24h).
        #[arg(long, value_name = "DURATION")]
        grace: Option<String>,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop delivering (pending deliveries stop too).
    Disable {
        /// Subscription id or name.
        sub: String,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deliver again after a disable (replay the gap with `replay --since`).
    Enable {
        /// Subscription id or name.
        sub: String,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a subscription and its delivery history.
    Rm {
        /// Subscription id or name.
        sub: String,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl SubsCommand {
    /// The API access options of any subcommand.
    pub fn client(&self) -> &ClientArgs {
        match self {
            Self::List(client)
            | Self::Add { client, .. }
            | Self::Show { client, .. }
            | Self::Test { client, .. }
            | Self::Deliveries { client, .. }
            | Self::Replay { client, .. }
            | Self::Rotate { client, .. }
            | Self::Disable { client, .. }
            | Self::Enable { client, .. }
            | Self::Rm { client, .. } => client,
        }
    }
}

/// `cynode memory`.
#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Remember a text (yours only by default).
    Add {
        /// The text (quote it).
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
        /// Who may see it: user (default), install (from a non-admin token: a proposal an admin approves),
        /// shared (global admin token).
        #[arg(long, default_value = "user")]
        scope: String,
        /// Exempt from decay.
        #[arg(long)]
        pinned: bool,
        /// Expire after this many days.
        #[arg(long, value_name = "DAYS")]
        ttl_days: Option<u32>,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Recall memories (hybrid: meaning and keywords).
    Search {
        /// What to look for.
        #[arg(required = true, num_args = 1.., value_name = "QUERY")]
        query: Vec<String>,
        /// How many (1–50).
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List memories you may see, newest first.
    List {
        /// How many (1–200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Proposals of install-wide memory awaiting approval instead (all with an admin token, else yours).
        #[arg(long)]
        proposed: bool,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Approve a proposal of install-wide memory (admin token; not your own).
    Approve {
        /// Memory id (UUID).
        #[arg(value_name = "ID")]
        id: uuid::Uuid,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deny a proposal of install-wide memory (admin token), or withdraw your own: it is deleted.
    Deny {
        /// Memory id (UUID).
        #[arg(value_name = "ID")]
        id: uuid::Uuid,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Forget one memory by id, or everything of a user (`--user`) or an import (`--label`).
    Forget {
        /// Memory id (UUID).
        #[arg(value_name = "ID", required_unless_present_any = ["user", "label"])]
        id: Option<uuid::Uuid>,
        /// Everything this user wrote or owns (others than yourself: admin token).
        #[arg(long, conflicts_with_all = ["id", "label"])]
        user: Option<String>,
        /// Everything of this import.
        #[arg(long, conflicts_with_all = ["id", "user"])]
        label: Option<String>,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Import memories from a file: one text a line, or JSON lines ({"text": …, "scope": …}); provenance
    /// `import`, under a label (default: the file name).
    Import {
        /// The file (`-` for standard input).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The import's label.
        #[arg(long)]
        label: Option<String>,
        /// API access.
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl MemoryCommand {
    /// The API access options of any subcommand.
    pub fn client(&self) -> &ClientArgs {
        match self {
            Self::Add { client, .. }
            | Self::Search { client, .. }
            | Self::List { client, .. }
            | Self::Forget { client, .. }
            | Self::Approve { client, .. }
            | Self::Deny { client, .. }
            | Self::Import { client, .. } => client,
        }
    }
}

/// `cynode admin`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Node keys (what `cynode-node --key` presents).
    #[command(subcommand, name = "node-key")]
    NodeKey(NodeKeyCommand),
    /// Platform installs (tenants).
    #[command(subcommand)]
    Install(InstallCommand),
    /// Team roles of chat users per install (and per channel).
    #[command(subcommand)]
    Role(RoleCommand),
    /// An install's team settings: the default role of unknown chat users and what each role may use.
    #[command(subcommand)]
    Team(TeamCommand),
    /// External OpenAI-compatible model providers (used when no node serves a model, or the queue is long).
    #[command(subcommand)]
    Provider(ProviderCommand),
}

/// `cynode admin team`.
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Show an install's default role and per-role grants.
    Show {
        /// Install id, name or external id.
        install: String,
        /// Print JSON (the shape `set` reads).
        #[arg(long)]
        json: bool,
    },
    /// Replace an install's default role and per-role grants with FILE's (JSON, as `GET /v1/team` and
    /// `show --json` print: {"default_role": "member", "grants": {"member": {"models": ["small"]}}}).
    Set {
        /// Install id, name or external id.
        install: String,
        /// The settings (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

/// `cynode admin provider`.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Add a provider, or change the one of that name (the key is read from a file, never the command line).
    Add {
        /// Unique name (a-z 0-9 _ -).
        name: String,
        /// Base URL of its OpenAI-compatible API, without /v1 (e.g. https://api.example.com).
        #[arg(long, value_name = "URL")]
        base_url: String,
        /// Models it may serve, comma-separated or repeated; the first is the default.
        #[arg(long = "model", value_delimiter = ',', required = true, value_name = "MODEL")]
        models: Vec<String>,
        /// File holding its API key (`-` reads standard input); without it, no key is sent.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Only for this install (name); default: every install, the console and the API.
        #[arg(long, value_name = "INSTALL")]
        install: Option<String>,
        /// Calls at once per gateway replica.
        #[arg(long, default_value_t = 8, value_name = "N")]
        max_concurrent: u32,
        /// Queued inference jobs at which calls go to it although a node serves the model (0: never).
        #[arg(long, default_value_t = 8, value_name = "N")]
        queue_threshold: u32,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List providers (never their keys) and how many replicas serve each.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a provider: its node key is revoked; queued calls for it fail as unschedulable.
    Remove {
        /// Provider name.
        name: String,
    },
}

/// `cynode admin node-key`.
#[derive(Debug, Subcommand)]
pub enum NodeKeyCommand {
    /// Create a node key and print it (shown only once).
    Create {
        /// Unique name.
        name: String,
        /// Executors it grants, comma-separated: docker, inference, host (default docker).
        #[arg(long, value_delimiter = ',', value_name = "LIST")]
        executors: Vec<String>,
        /// Print JSON (including the key).
        #[arg(long)]
        json: bool,
    },
    /// List node keys (never the keys).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a node key by id or name; its nodes cannot register again and get no new jobs.
    Revoke {
        /// Key id or name.
        key: String,
    },
}

/// `cynode admin install`.
#[derive(Debug, Subcommand)]
pub enum InstallCommand {
    /// List installs (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Refuse the install's platform requests from now on.
    Disable {
        /// Install id, name or external id.
        install: String,
    },
    /// Accept the install's platform requests again.
    Enable {
        /// Install id, name or external id.
        install: String,
    },
}

/// `cynode admin token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown only once).
    Create {
        /// Who the token acts as (the requester of what it submits).
        name: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "operator")]
        role: String,
        /// Limit the token to one install (tenant) id; default: every install.
        #[arg(long, value_name = "INSTALL_ID")]
        install: Option<uuid::Uuid>,
        /// Print JSON (including the token).
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id or name.
    Revoke {
        /// Token id or name.
        token: String,
    },
}

/// Options shared by `up` and `serve`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Bootstrap file to import at start (installs, node keys, templates, policy, subscriptions).
    #[arg(long, value_name = "FILE")]
    pub bootstrap: Option<PathBuf>,
    /// CyNode data directory for the embedded PostgreSQL and the local master key (`up` only).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

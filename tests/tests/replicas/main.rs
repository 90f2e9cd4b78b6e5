//! Proof under fire: three `cynode serve` replicas on one PostgreSQL behind a real HAProxy (round-robin, no
//! stickiness), real `cynode-node` agents, the rule-enforcing fake Slack — and processes killed, frozen and cut off
//! while work is in flight. Every invariant is checked in the database, at the fake and at the webhook receiver,
//! never by the code under test. Build the binaries first, with the same target directory:
//!
//! ```text
//! cargo build -p cynode-gateway -p cynode-node-agent && cargo test -p cynode-tests --test replicas
//! ```
//!
//! Needs HAProxy (`scripts/setup` installs it) and, for the tests that run jobs, the container engine; it never
//! skips. Loads are sized for a 2-core CI machine, and the scenarios run one at a time (each is a whole-machine
//! load test): the whole target takes about seven minutes there (scenario 3, `webhooks`, about 35 s of it).

mod backends;
mod budget;
mod db_outage;
mod rolling;
mod storm;
mod support;
mod takeover;
mod webhooks;

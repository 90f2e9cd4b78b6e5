//! `remember`, `recall` and `forget` in chat: the memory service ([`crate::memory`]) as seen from a thread.

use super::{CommandError, Commands, Reply, refusal, reply};
use crate::memory::{Forget, MemoryError, NewMemory, Provenance, Recall, Scope, Viewer, recall};
use crate::tasks::{Origin, short};

impl Commands {
    async fn viewer(&self, origin: &Origin) -> Result<Viewer, CommandError> {
        Ok(Viewer::of(&self.pool, origin).await?)
    }

    /// `remember`: a memory in `scope`, with provenance `user` and this request as its source.
    pub(super) async fn remember(&self, origin: &Origin, scope: Scope, text: &str) -> Result<Reply, CommandError> {
        let viewer = self.viewer(origin).await?;
        let mut new = NewMemory::new(text, scope, Provenance::User);
        new.source_inbound = origin.inbound_id;
        let m = match self.memories.add(&viewer, new).await {
            Ok(m) => m,
            Err(e) => return answer(e),
        };
        if m.awaiting_approval {
            return Ok(reply(format!(
                "Proposed for everyone in this workspace (`{id}`). Only you and this workspace's approvers see it \
                 until an approver says `approve {id}` (or `deny {id}`); undecided, it lapses in {days} days. \
                 `deny {id}` withdraws it.",
                id = short(m.id),
                days = crate::memory::store::PROPOSAL_TTL.as_secs() / 86_400
            )));
        }
        let place = match scope {
            Scope::Channel => "this channel",
            Scope::Thread => "this thread",
            Scope::User => "you only",
            Scope::Install | Scope::Shared => "everyone in this workspace",
        };
        let later = if m.embedding_model.is_none() && self.memories.embedder().is_some() {
            " The embedder is unavailable right now: it is found by keywords until it is embedded."
        } else {
            ""
        };
        Ok(reply(format!("Remembered for {place} (`{}`).{later}", short(m.id))))
    }

    /// `approve <id>` / `deny <id>` of a proposal of install-wide memory (when `<id>` names no job). `None` when
    /// the id names no proposal the asker may decide either.
    pub(super) async fn review_memory(
        &self,
        origin: &Origin,
        id: &str,
        approve: bool,
    ) -> Result<Option<Reply>, CommandError> {
        if origin.install_id.is_none() {
            return Ok(None);
        }
        let viewer = self.viewer(origin).await?;
        let id = match self.memories.resolve_proposal(&viewer, id).await {
            Ok(id) => id,
            Err(MemoryError::NotFound(_)) => return Ok(None),
            Err(e) => return answer(e).map(Some),
        };
        match self.memories.review(&viewer, id, approve).await {
            Ok(Some(m)) => Ok(Some(reply(format!(
                "Approved `{}`: everyone in this workspace recalls it now (proposed by {}).",
                short(m.id),
                m.author
            )))),
            Ok(None) => Ok(Some(reply(format!("Dropped the proposed memory `{}`.", short(id))))),
            Err(e) => answer(e).map(Some),
        }
    }

    /// `recall`: hybrid recall of what the asker may see.
    pub(super) async fn recall(&self, origin: &Origin, query: &str) -> Result<Reply, CommandError> {
        let viewer = self.viewer(origin).await?;
        match self.memories.recall(&viewer, &Recall { query: query.to_owned(), limit: 5 }).await {
            Ok(r) => Ok(reply(recall::for_thread(query, &r))),
            Err(e) => answer(e),
        }
    }

    /// `forget <id>` or `forget --mine`.
    pub(super) async fn forget(&self, origin: &Origin, memory: Option<&str>) -> Result<Reply, CommandError> {
        let viewer = self.viewer(origin).await?;
        let what = match memory {
            None => Forget::User(viewer.user.clone()),
            Some(id) => match self.memories.resolve(&viewer, id).await {
                Ok(id) => Forget::Id(id),
                Err(e) => return answer(e),
            },
        };
        match self.memories.forget(&viewer, &what).await {
            Ok(n) => Ok(reply(match what {
                Forget::Id(id) => format!("Forgot `{}`.", short(id)),
                _ => format!("Forgot {n} of your memories in this workspace."),
            })),
            Err(e) => answer(e),
        }
    }
}

/// A memory error as a reply: the user's mistakes are refusals; the store's failures are errors.
fn answer(e: MemoryError) -> Result<Reply, CommandError> {
    match e {
        MemoryError::Store(e) => Err(CommandError(e)),
        MemoryError::NotFound(id) => {
            Ok(refusal(format!("There is no memory `{id}` that you can see. `recall <words>` finds yours.")))
        }
        MemoryError::Invalid(m) | MemoryError::Forbidden(m) => Ok(refusal(format!("{}{}", upper_first(&m), "."))),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

//! Roles in commands: a chat user's role where they asked decides which commands they may use, what their jobs
//! may use and which models answer them ([`crate::team`]). API tokens have roles of their own (checked by the API), so only chat requests are
//! checked here. Every refusal is a reply and a `command.refused` audit entry.

use super::{CommandError, Commands, Reply, refusal};
use crate::audit;
use crate::tasks::Origin;
use crate::team::{self, Standing};

impl Commands {
    /// The asker's standing, for chat requests through an install.
    pub(super) async fn standing(&self, origin: &Origin) -> Result<Option<Standing>, CommandError> {
        let Some(install) = origin.install_id.filter(|_| origin.source == "chat") else { return Ok(None) };
        Ok(Some(team::standing(&self.pool, install, origin.conversation_id, &origin.requester).await?))
    }

    /// The refusal of `verb` for the asker's role, if their role does not allow it.
    pub(super) async fn command_refusal(&self, origin: &Origin, verb: &str) -> Result<Option<Reply>, CommandError> {
        let Some(standing) = self.standing(origin).await? else { return Ok(None) };
        match standing.allows_command(verb) {
            Ok(()) => Ok(None),
            Err(why) => self.refuse(origin, verb, &standing, why).await.map(Some),
        }
    }

    /// The refusal of a job with this template, GPU and network access for the asker's role, if any.
    pub(super) async fn job_refusal(
        &self,
        origin: &Origin,
        template: &str,
        gpu: bool,
        network: bool,
    ) -> Result<Option<Reply>, CommandError> {
        let Some(standing) = self.standing(origin).await? else { return Ok(None) };
        match standing.allows_job(template, gpu, network) {
            Ok(()) => Ok(None),
            Err(why) => self.refuse(origin, "run", &standing, why).await.map(Some),
        }
    }

    /// The refusal of `model` (empty: the node's default) for the asker's role, if their role does not grant it.
    pub(crate) async fn model_refusal(&self, origin: &Origin, model: &str) -> Result<Option<Reply>, CommandError> {
        let Some(standing) = self.standing(origin).await? else { return Ok(None) };
        match standing.allows_model(model) {
            Ok(()) => Ok(None),
            Err(why) => self.refuse(origin, "model", &standing, why).await.map(Some),
        }
    }

    async fn refuse(&self, origin: &Origin, verb: &str, s: &Standing, why: String) -> Result<Reply, CommandError> {
        let mut tx = self.pool.begin().await?;
        let detail = serde_json::json!({
            "install": origin.install_id, "command": verb, "role": s.role.as_str(), "role_from": s.from,
            "reason": why,
        });
        audit::append(&mut tx, &origin.requester, "command.refused", verb, &detail).await?;
        tx.commit().await?;
        Ok(refusal(why))
    }
}

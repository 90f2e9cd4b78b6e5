//! `cynode logs <job> [-f]`: a job's full output; with `-f`, follows it live through its task's event stream.

use std::io::Write as _;

use super::client::{ApiClient, SseEvent};
use crate::cli::LogsArgs;
use crate::routes::api::model::{JobView, TaskEvent};

/// Runs `cynode logs`.
///
/// # Errors
/// API failures, phrased for the user.
pub async fn run(args: &LogsArgs, api: &ApiClient) -> anyhow::Result<()> {
    let job: JobView = api.get(&format!("/v1/jobs/{}", args.job)).await?;
    if !args.follow {
        let q = args.attempt.map(|a| format!("?attempt={a}")).unwrap_or_default();
        print!("{}", api.get_text(&format!("/v1/jobs/{}/output{q}", job.id)).await?);
        let _ = std::io::stdout().flush();
        return Ok(());
    }
    let path = format!("/v1/tasks/{}/events", job.task_id);
    let mut last: Option<String> = None;
    loop {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
        let (api2, path2, last2) = (api.clone(), path.clone(), last.clone());
        let reader = tokio::spawn(async move { api2.sse(&path2, last2.as_deref(), &tx).await });
        while let Some(ev) = rx.recv().await {
            if ev.id.is_some() {
                last.clone_from(&ev.id);
            }
            if ev.event == "end" {
                return Ok(());
            }
            match serde_json::from_str::<TaskEvent>(&ev.data) {
                Ok(TaskEvent::Output { job_id, data, .. }) if job_id == job.id => {
                    if args.client.json {
                        println!("{}", ev.data);
                    } else {
                        print!("{data}");
                        let _ = std::io::stdout().flush();
                    }
                }
                _ => {}
            }
        }
        reader.await??;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

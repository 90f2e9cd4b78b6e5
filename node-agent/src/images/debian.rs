//! Getting the static busybox binary out of Debian's `busybox-static` package with apt.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::{BUSYBOX_PACKAGE, ImageError};

/// Gets the static busybox out of Debian's package, downloading it into `cache_dir` if needed.
pub(super) async fn busybox_from_deb(cache_dir: &Path) -> Result<Vec<u8>, ImageError> {
    let io = |action: &str| {
        let action = format!("{action} in {}", cache_dir.display());
        move |source| ImageError::Io { action, source }
    };
    tokio::fs::create_dir_all(cache_dir).await.map_err(io("create the image cache"))?;
    let deb = match find_deb(cache_dir).await.map_err(io("list the image cache"))? {
        Some(deb) => deb,
        None => {
            let staging = tempfile::tempdir_in(cache_dir).map_err(io("create a download dir"))?;
            let download = ["download", BUSYBOX_PACKAGE];
            if run_tool("apt-get", &download, staging.path(), cache_dir).await.is_err() {
                // A fresh machine may have no package lists yet.
                run_tool("apt-get", &["update", "-qq"], staging.path(), cache_dir).await?;
                run_tool("apt-get", &download, staging.path(), cache_dir).await?;
            }
            let fetched = find_deb(staging.path()).await.map_err(io("list the download dir"))?;
            let fetched = fetched.ok_or_else(|| ImageError::ToolFailed {
                tool: "apt-get",
                detail: "it reported success but left no .deb file".to_owned(),
            })?;
            let target = cache_dir.join(fetched.file_name().unwrap_or_default());
            tokio::fs::rename(&fetched, &target).await.map_err(io("store the package"))?;
            target
        }
    };
    let unpacked = tempfile::tempdir_in(cache_dir).map_err(io("create an unpack dir"))?;
    let deb_arg = deb.to_string_lossy();
    let out_arg = unpacked.path().to_string_lossy();
    run_tool("dpkg-deb", &["-x", &deb_arg, &out_arg], cache_dir, cache_dir).await?;
    read(&unpacked.path().join("bin/busybox")).await
}

async fn find_deb(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&format!("{BUSYBOX_PACKAGE}_")) && name.ends_with(".deb") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

async fn run_tool(tool: &'static str, args: &[&str], cwd: &Path, cache_dir: &Path) -> Result<(), ImageError> {
    let out = Command::new(tool).args(args).current_dir(cwd).output().await.map_err(|e| ImageError::ToolMissing {
        tool,
        detail: e.to_string(),
        cache_dir: cache_dir.display().to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
    let detail = tail.into_iter().rev().collect::<Vec<_>>().join(" / ");
    Err(ImageError::ToolFailed { tool, detail: format!("{} ({})", detail.trim(), out.status) })
}

pub(super) async fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    tokio::fs::read(path).await.map_err(|source| ImageError::Io { action: format!("read {}", path.display()), source })
}

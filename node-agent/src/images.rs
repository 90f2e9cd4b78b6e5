//! Building the built-in sandbox images locally, without a registry.
//!
//! The `busybox` template is a static busybox from Debian's `busybox-static` package, laid out
//! as a tiny root filesystem (applet symlinks, `/tmp`, `/work`, a non-root `sandbox` user with
//! uid/gid 65534) and imported with the engine's import API (`docker import`). Building is
//! idempotent: an image with the same tag and builder version is left alone.
//!
//! # Python template (recipe, not built automatically)
//!
//! A Python image cannot be layered on busybox (it has no package manager or interpreter to
//! install into) and no base image can be pulled, so it is built from Debian packages the same
//! way: `debootstrap` makes the root filesystem, which is imported with the same labels and
//! user (Debian's `nobody` is already uid 65534). `node-agent/scripts/build-python-template.sh [TAG]` does it (as root); in short:
//!
//! ```text
//! debootstrap --variant=minbase --include=python3,python3-venv bookworm ROOT http://deb.debian.org/debian
//! rm -rf ROOT/var/cache/apt/archives/*.deb ROOT/var/lib/apt/lists/*
//! mkdir -p ROOT/work && chmod 1777 ROOT/work ROOT/tmp
//! tar --numeric-owner -C ROOT -c . | docker import \
//!   --change 'LABEL cynode.template=python' --change 'LABEL cynode.builder-version=1' \
//!   --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'USER 65534:65534' \
//!   --change 'WORKDIR /work' --change 'CMD ["python3"]' - cynode/python:3
//! ```
//!
//! Any image works as a template if it has `sh`, runs as uid 65534 without surprises, and
//! expects nothing writable but `/tmp` and `/work`.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::query_parameters::{CreateImageOptions, ListImagesOptions, RemoveImageOptions};
use futures_util::TryStreamExt;

use crate::executor::docker::{Engine, ExecError, SANDBOX_PATH, SANDBOX_USER, WORK_DIR};

mod debian;
mod rootfs;

pub use rootfs::{BUSYBOX_APPLETS, busybox_rootfs};

/// Version of the busybox image layout produced here; bump it when the layout changes so
/// existing images are rebuilt.
pub const BUSYBOX_BUILDER_VERSION: &str = "1";
/// Label naming the template an image was built for.
pub const LABEL_TEMPLATE: &str = "cynode.template";
/// Label carrying the builder version.
pub const LABEL_BUILDER_VERSION: &str = "cynode.builder-version";
/// Debian package that provides the static busybox.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";

/// Where the builder finds busybox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Directory that keeps the downloaded `.deb` between builds. A `busybox-static_*.deb`
    /// already there is used without asking apt.
    pub cache_dir: PathBuf,
    /// A static busybox binary to use instead of Debian's package (for non-Debian hosts).
    pub busybox_binary: Option<PathBuf>,
}

impl Default for BuildOptions {
    /// Cache in `<system temp dir>/cynode-image-cache`, busybox from apt.
    fn default() -> Self {
        Self { cache_dir: std::env::temp_dir().join("cynode-image-cache"), busybox_binary: None }
    }
}

/// An image that is present after a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The tag that was asked for.
    pub tag: String,
    /// The engine's image id.
    pub id: String,
    /// False when an up-to-date image was already there and nothing was done.
    pub built: bool,
}

/// Why an image could not be built. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A tool needed to fetch or unpack the package is missing.
    #[error(
        "`{tool}` is needed to fetch Debian's `{BUSYBOX_PACKAGE}` package but could not be run \
         ({detail}); install it, put a {BUSYBOX_PACKAGE}_*.deb into {cache_dir}, or configure a \
         static busybox binary"
    )]
    ToolMissing {
        /// The tool (`apt-get`, `dpkg-deb`).
        tool: &'static str,
        /// Why it could not be run.
        detail: String,
        /// The cache directory that could hold the package instead.
        cache_dir: String,
    },
    /// A tool ran and failed.
    #[error("`{tool}` failed for Debian's `{BUSYBOX_PACKAGE}` package: {detail}")]
    ToolFailed {
        /// The tool.
        tool: &'static str,
        /// The end of its error output.
        detail: String,
    },
    /// Reading or writing local files failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What we were doing.
        action: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The engine could not be reached, or refused the import.
    #[error(transparent)]
    Engine(#[from] ExecError),
}

/// Builds the busybox sandbox image as `tag` (e.g. `cynode/busybox:1`) with default options.
///
/// # Errors
/// See [`build_busybox_image_with`].
pub async fn build_busybox_image(engine: &Engine, tag: &str) -> Result<BuiltImage, ImageError> {
    build_busybox_image_with(engine, tag, &BuildOptions::default()).await
}

/// Builds the busybox sandbox image as `tag`, unless an image with that tag and the current
/// [`BUSYBOX_BUILDER_VERSION`] exists.
///
/// # Errors
/// [`ImageError`] when busybox cannot be obtained (apt unavailable or failing), unpacked, or
/// the engine refuses the import.
pub async fn build_busybox_image_with(
    engine: &Engine,
    tag: &str,
    options: &BuildOptions,
) -> Result<BuiltImage, ImageError> {
    let previous = current_image(engine, tag).await?;
    if let Some(ImageState { id, current: true }) = previous {
        return Ok(BuiltImage { tag: tag.to_owned(), id, built: false });
    }
    let busybox = match &options.busybox_binary {
        Some(path) => debian::read(path).await?,
        None => debian::busybox_from_deb(&options.cache_dir).await?,
    };
    let rootfs = busybox_rootfs(&busybox)
        .map_err(|source| ImageError::Io { action: "assemble the image root filesystem".to_owned(), source })?;
    let (repo, version) = split_tag(tag);
    let changes = [
        format!("LABEL {LABEL_TEMPLATE}=busybox"),
        format!("LABEL {LABEL_BUILDER_VERSION}={BUSYBOX_BUILDER_VERSION}"),
        format!("ENV PATH={SANDBOX_PATH}"),
        format!("USER {SANDBOX_USER}"),
        format!("WORKDIR {WORK_DIR}"),
        r#"CMD ["sh"]"#.to_owned(),
    ];
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(version.to_owned()),
        changes: changes.to_vec(),
        ..Default::default()
    };
    let body = bollard::body_full(rootfs.into());
    engine
        .docker()
        .create_image(Some(options), Some(body), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| engine.err("import the busybox image", e))?;
    let id = match current_image(engine, tag).await? {
        Some(ImageState { id, current: true }) => id,
        _ => {
            return Err(ExecError::Engine {
                action: "import the busybox image",
                detail: format!("the import finished but {tag} is not there with the expected labels"),
            }
            .into());
        }
    };
    remove_dangling(engine).await;
    tracing::info!(image = tag, image.id = %id, "built the busybox sandbox image");
    Ok(BuiltImage { tag: tag.to_owned(), id, built: true })
}

/// Removes untagged busybox images: an outdated build, or the copy of a builder that raced us
/// and lost the tag. Images still used by containers are refused by the engine and stay.
async fn remove_dangling(engine: &Engine) {
    let filters = HashMap::from([
        ("dangling".to_owned(), vec!["true".to_owned()]),
        ("label".to_owned(), vec![format!("{LABEL_TEMPLATE}=busybox")]),
    ]);
    let options = ListImagesOptions { filters: Some(filters), ..Default::default() };
    let Ok(images) = engine.docker().list_images(Some(options)).await else {
        return;
    };
    for image in images {
        let removed = engine.docker().remove_image(&image.id, None::<RemoveImageOptions>, None).await;
        if removed.is_ok() {
            tracing::debug!(image.id = %image.id, "removed an untagged busybox image");
        }
    }
}

/// An existing image and whether this builder version made it.
struct ImageState {
    id: String,
    current: bool,
}

/// The image `tag` names, if any.
async fn current_image(engine: &Engine, tag: &str) -> Result<Option<ImageState>, ExecError> {
    let image = match engine.docker().inspect_image(tag).await {
        Ok(image) => image,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
        Err(e) => return Err(engine.err("inspect the busybox image", e)),
    };
    let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
    let current = labels.get(LABEL_TEMPLATE).map(String::as_str) == Some("busybox")
        && labels.get(LABEL_BUILDER_VERSION).map(String::as_str) == Some(BUSYBOX_BUILDER_VERSION);
    Ok(image.id.map(|id| ImageState { id, current }))
}

/// `repo[:tag]` → (repo, tag), where a `:` before the last `/` belongs to a registry port.
fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_like_docker() {
        assert_eq!(split_tag("cynode/busybox:1"), ("cynode/busybox", "1"));
        assert_eq!(split_tag("cynode/busybox"), ("cynode/busybox", "latest"));
        assert_eq!(split_tag("reg:5000/x"), ("reg:5000/x", "latest"));
    }
}

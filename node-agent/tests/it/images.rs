//! The local busybox image builder.

use cynode_node_agent::images::{BUSYBOX_BUILDER_VERSION, LABEL_BUILDER_VERSION, LABEL_TEMPLATE, build_busybox_image};

use crate::support::{IMAGE, TestExec};

#[tokio::test]
async fn building_is_idempotent_and_labels_the_image() {
    let t = TestExec::new().await; // builds IMAGE once per run
    let again = build_busybox_image(t.engine(), IMAGE).await.expect("build");
    assert!(!again.built, "an up-to-date image must not be rebuilt");
    let image = t.engine().docker().inspect_image(IMAGE).await.expect("inspect");
    assert_eq!(image.id.as_deref(), Some(again.id.as_str()));
    let config = image.config.expect("config");
    let labels = config.labels.expect("labels");
    assert_eq!(labels[LABEL_TEMPLATE], "busybox");
    assert_eq!(labels[LABEL_BUILDER_VERSION], BUSYBOX_BUILDER_VERSION);
    assert_eq!(config.user.as_deref(), Some("65534:65534"));
}

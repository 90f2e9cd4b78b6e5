//! Unit tests of the warm pool's shape rules.

use super::*;
use crate::executor::docker::spec::{GpuRequest, shell_command};

#[test]
fn only_jobs_without_network_or_gpus_have_a_pool_shape() {
    let mut spec = SandboxSpec::new(uuid::Uuid::nil(), 1, "img", shell_command("true"));
    spec.env.push(("A".into(), "b".into()));
    spec.limits.timeout = Duration::from_secs(1);
    spec.limits.max_output_bytes = 7;
    let shape = PoolShape::of(&spec).expect("poolable");
    // Time and output limits are the executor's, not the container's: they do not matter.
    assert_eq!(shape, PoolShape::new("img", &SandboxLimits::default()));
    spec.network = true;
    assert_eq!(PoolShape::of(&spec), None);
    spec.network = false;
    spec.gpus = Some(GpuRequest::All);
    assert_eq!(PoolShape::of(&spec), None);
}

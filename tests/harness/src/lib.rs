//! Integration-test harness: a real kube-apiserver and etcd from
//! `tests/kube-fixture`, plus helpers to put objects into it.
//!
//! ```no_run
//! # async fn example() -> Result<(), ferrolb_test_harness::Error> {
//! use ferrolb_test_harness::{shared, create_namespace, unique_name};
//!
//! // One apiserver per test binary; every test gets its own namespace.
//! let fixture = shared().await?;
//! let client = fixture.client()?;
//! let ns = unique_name("my-test");
//! create_namespace(&client, &ns).await?;
//! # Ok(()) }
//! ```
//!
//! A `kube::Client` is bound to the tokio runtime that created it, and every
//! `#[tokio::test]` has its own runtime, so [`KubeFixture::client`] builds a
//! fresh client on each call instead of handing out a shared one.
//!
//! For the speaker (docs/testing-netns.md): [`netns`] builds a router and
//! node namespaces on one bridge, [`relay`] makes the fixture reachable from
//! inside them, [`kubelet`] writes the Nodes, Pods and EndpointSlices a
//! kubelet would, [`identity`] runs a process as a ServiceAccount under the
//! shipped RBAC, and [`probe`] checks ARP/NDP from the router. They need
//! root, `ip` (iproute2), `arping` and python3.

mod arp;
mod binary;
mod error;
mod fixture;
pub mod golden;
pub mod identity;
pub mod kubelet;
pub mod netns;
pub mod probe;
pub mod relay;
pub mod routers;
mod resources;
mod wait;

pub use binary::{FixtureBinaries, fixture_binaries};
pub use error::{Error, Result};
pub use fixture::{FixtureOptions, KubeFixture, configure_shared, shared};
pub use resources::{
    FIELD_MANAGER, apply_yaml, apply_yaml_in, create_namespace, create_node, install_crds,
    unique_name, wait_crds_established,
};
pub use wait::wait_for;

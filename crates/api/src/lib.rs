//! The metallb.io API: custom resource types (same kinds, fields, defaults and
//! schema validation as MetalLB), CRD generation, BGPPeer version conversion and
//! the annotation/label keys MetalLB reads and writes.

// kube's `printcolumn(name = .., type_ = .., ..)` repeats keys across columns by
// design; clippy reads each repetition as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod annotations;
pub mod cel;
pub mod conversion;
pub mod crds;
pub mod labels;
mod optional_spec;
mod schema_attrs;
mod schema_fixups;
mod serde_defaults;
pub mod v1beta1;
pub mod v1beta2;

/// API group of every kind in this crate.
pub const GROUP: &str = "metallb.io";

//! One occurrence on its way from a [`super::Recorder`] to the task, packed
//! into a single allocation.
//!
//! The channel can hold thousands of occurrences: a speaker that starts with
//! 10,000 Services records one `nodeAssigned` each in one pass, and the task
//! reads them only as its queue drains. As an `ObjectReference`, each took
//! about 300 bytes in five allocations; packed, about 100 in one. The
//! `EventSpec` is kept as it is: its strings are shared (the same
//! `nodeAssigned` text for every Service).

use k8s_openapi::api::core::v1::ObjectReference;

use super::EventSpec;

/// The reference's text fields, in packing order.
const FIELDS: usize = 7;

pub(super) struct Occurrence {
    /// The fields, one after the other.
    text: Box<str>,
    /// Where each field ends in `text`.
    ends: [u32; FIELDS],
    /// Bit i set: field i is present (the reference's fields are optional).
    present: u16,
    spec: EventSpec,
    /// Whether it holds a place of the channel's bound (returned when the
    /// task takes it).
    pub(super) counted: bool,
}

impl Occurrence {
    pub(super) fn pack(object: &ObjectReference, spec: EventSpec, counted: bool) -> Occurrence {
        // Exhaustive: a field added to ObjectReference must be packed too.
        let ObjectReference { api_version, field_path, kind, name, namespace, resource_version, uid } = object;
        let fields: [Option<&str>; FIELDS] = [
            api_version.as_deref(),
            field_path.as_deref(),
            kind.as_deref(),
            name.as_deref(),
            namespace.as_deref(),
            resource_version.as_deref(),
            uid.as_deref(),
        ];
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let (mut ends, mut present) = ([0; FIELDS], 0);
        for (i, field) in fields.iter().enumerate() {
            if let Some(f) = field {
                text.push_str(f);
                present |= 1 << i;
            }
            // Field lengths are bounded far below 4 GiB by the API server's
            // request size; saturating keeps a bogus one from panicking.
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Occurrence { text: text.into_boxed_str(), ends, present, spec, counted }
    }

    pub(super) fn unpack(&self) -> (ObjectReference, EventSpec) {
        let field = |i: usize| -> Option<String> {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            let end = self.ends[i] as usize;
            (self.present & (1 << i) != 0).then(|| self.text.get(start..end).unwrap_or_default().to_string())
        };
        let object = ObjectReference {
            api_version: field(0),
            field_path: field(1),
            kind: field(2),
            name: field(3),
            namespace: field(4),
            resource_version: field(5),
            uid: field(6),
        };
        (object, self.spec.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;

    #[test]
    fn unpacks_what_was_packed() {
        let full = ObjectReference {
            api_version: Some("v1".into()),
            field_path: Some("spec.ports{http}".into()),
            kind: Some("Service".into()),
            name: Some("web".into()),
            namespace: Some("default".into()),
            resource_version: Some("42".into()),
            uid: Some("0b1c-é".into()),
        };
        let spec = EventSpec { type_: EventType::Warning, reason: "nodeAssigned".into(), message: "announcing from \"n1\"".into() };
        let o = Occurrence::pack(&full, spec.clone(), true);
        assert_eq!(o.unpack(), (full, spec));
        assert!(o.counted);

        // Absent and empty fields stay apart; so do empty reason and message.
        let sparse = ObjectReference { name: Some(String::new()), uid: Some("u".into()), ..ObjectReference::default() };
        let spec = EventSpec { type_: EventType::Normal, reason: "".into(), message: "m".into() };
        assert_eq!(Occurrence::pack(&sparse, spec.clone(), false).unpack(), (sparse, spec));
    }
}

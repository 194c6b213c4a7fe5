//! The `type` of a core/v1 Event: the one definition, shared by the allocator
//! (which decides what to say) and the runtime's recorder (which says it).

/// The `type` of a core/v1 Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened (an address assigned, announced).
    Normal,
    /// Something needs attention (an allocation failed, a conflict).
    Warning,
}

impl EventType {
    /// The text of the Event's `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

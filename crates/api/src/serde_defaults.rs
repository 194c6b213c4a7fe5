//! Small predicates and default providers shared by the serde attributes of
//! the API types. Go's `omitempty` drops zero values on output; these helpers
//! give the Rust types the same wire shape.

pub(crate) fn is_false(value: &bool) -> bool {
    !*value
}

pub(crate) fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

pub(crate) fn is_zero_u16(value: &u16) -> bool {
    *value == 0
}

pub(crate) fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

pub(crate) fn default_true() -> bool {
    true
}

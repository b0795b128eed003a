//! Views of a release: the data a command shows, and its text rendering.

pub mod status;
pub mod status_text;

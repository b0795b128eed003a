//! One module per command.

pub mod action;
pub mod convert;
pub mod history;
pub mod list;
pub mod plan;
pub mod status;
pub mod version;

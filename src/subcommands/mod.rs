//! One module per `image:*` subcommand: each turns its arguments into calls of the library.
//! They depend on the library only, never on each other; `command_table.rs` lists them.

pub mod client;
pub mod from;
pub mod history;
pub mod layers;
pub mod load;
pub mod report;
pub mod rollback;
pub mod set;

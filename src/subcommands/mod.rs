//! One module per `image:*` subcommand: each turns parsed arguments into calls of the library.

pub mod from;
pub mod help;
pub mod history;
pub mod load;
pub mod report;
pub mod rollback;

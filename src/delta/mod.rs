//! Layer recipes (`docs/delta.md`): a layer tar cut into raw pieces and content-defined chunks
//! (`chunks`) and where the client's first pass cut it (`cuts`), the chunks a host keeps per
//! layer (`pack`), the recipe that sends a layer as its new bytes and references to kept chunks
//! (`recipe`, written by `ops`), and the layer rebuilt from one (`rebuild`). Pure: files and streams only, no
//! docker, no protocol; it uses nothing of the crate but `digest`.

pub mod chunks;
pub mod cuts;
pub mod error;
mod header;
pub mod ops;
pub mod pack;
pub mod rebuild;
pub mod recipe;
mod store;

#[cfg(test)]
pub(crate) mod tests;

//! Why a layer recipe cannot be used (`docs/delta.md`, "The recipe entry"): each reason is the
//! words that follow "cannot be used: " in the host's refusal line.

use std::{fmt, io};

use crate::digest::Digest;

#[derive(Debug)]
pub enum RecipeError {
    /// A reference names a key the app's packs do not keep.
    NotKept,
    /// A reference's length is not that of the kept chunk of its key.
    WrongLength,
    /// The end came after `total` bytes, short of the declared size.
    TooShort {
        total: u64,
        declared: u64,
    },
    /// The operations go on past the declared size (nothing past it was written).
    TooLong {
        declared: u64,
    },
    /// The rebuilt bytes hash to another digest than the declared diff ID.
    WrongDigest {
        rebuilt: Digest,
        declared: Digest,
    },
    /// Not a zstd stream, or not a recipe inside it.
    BadMagic,
    /// The stream ends before its end operation.
    CutShort,
    /// Bytes follow the end operation.
    Trailing,
    /// The declared size is over what the host takes.
    OverLimit {
        size: u64,
        limit: u64,
    },
    /// A kept chunk's frame is missing or does not decompress to it, or its bytes do not hash
    /// to the SHA-256 its pack records.
    Damaged,
    /// An operation byte that is none of literal, reference and end.
    UnknownOp(u8),
    /// A length that does not fit in 64 bits.
    BadLength,
    Io(io::Error),
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipeError::NotKept => f.write_str("it refers to content this host does not keep"),
            RecipeError::WrongLength => f.write_str("a reference's length is not its chunk's"),
            RecipeError::TooShort { total, declared } => {
                write!(
                    f,
                    "its bytes add up to {total}, not the {declared} it declares"
                )
            }
            RecipeError::TooLong { declared } => {
                write!(
                    f,
                    "its bytes add up to more than the {declared} it declares"
                )
            }
            RecipeError::WrongDigest { rebuilt, declared } => {
                write!(
                    f,
                    "it rebuilds {rebuilt}, not the diff ID {declared} it declares"
                )
            }
            RecipeError::BadMagic => f.write_str("it is not a layer recipe (bad magic)"),
            RecipeError::CutShort => f.write_str("it is cut short"),
            RecipeError::Trailing => f.write_str("it goes on after its end"),
            RecipeError::OverLimit { size, limit } => {
                write!(f, "its size {size} is over the limit {limit}")
            }
            RecipeError::Damaged => f.write_str("a kept chunk is damaged"),
            RecipeError::UnknownOp(op) => write!(f, "it has an unknown operation 0x{op:02x}"),
            RecipeError::BadLength => f.write_str("it has a length over 64 bits"),
            RecipeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RecipeError {}

impl From<io::Error> for RecipeError {
    fn from(e: io::Error) -> RecipeError {
        RecipeError::Io(e)
    }
}

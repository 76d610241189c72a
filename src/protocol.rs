//! The wire between the host plugin and the client (`dokku-image push`, docs/protocol.md):
//! the commands the client runs on the host, the line `image:layers` prints, the chunk queries
//! that may follow it and the recipe entries of an archive (docs/delta.md), and the refusals
//! the client matches to retry without what was refused. Both sides use this module and
//! nothing else for it; change the wire here and in docs/protocol.md.

use std::io::{self, BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use crate::delta::chunks::{Asked, Key, ASKED_LEN};
use crate::delta::recipe::Format;

/// `image:layers APP`: which layers the host holds, as one [`Answer`] line on stdout.
pub const LAYERS: &str = "image:layers";
/// `image:load APP IMAGE [USER_NAME [USER_EMAIL]]`: the archive on stdin.
pub const LOAD: &str = "image:load";
/// The version of the chunk query and recipe format this side speaks ([`Answer::delta`]): 2
/// takes recipes of both formats, 1 of the first only (docs/delta.md, "The recipe entry").
pub const DELTA_VERSION: u32 = 2;

/// The recipe format to send a host whose answer said `delta`, when it takes recipes.
pub fn recipe_format(delta: Option<u32>) -> Option<Format> {
    match delta {
        Some(1) => Some(Format::V1),
        Some(2) => Some(Format::V2),
        _ => None,
    }
}

/// An archive entry `NAME` + this suffix is the recipe of the layer entry `NAME`.
pub const RECIPE_SUFFIX: &str = ".recipe";

/// `image:layers`'s one line of JSON, as the plugin prints it and the client reads it:
/// `{"store":"classic","chains":[…],"blobs":[],"version":"…"}` or
/// `{"store":"containerd","chains":[],"blobs":[…],"version":"…"}`.
/// Field order and names are the contract between the two.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    /// [`CLASSIC`] or [`CONTAINERD`].
    pub store: String,
    #[serde(default)]
    pub chains: Vec<String>,
    #[serde(default)]
    pub blobs: Vec<String>,
    /// The plugin's version (older plugins leave it out); the client says when it differs
    /// from its own.
    #[serde(default)]
    pub version: Option<String>,
    /// The recipe format the host takes and the chunk queries it answers after this line
    /// ([`DELTA_VERSION`]); older plugins leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<u32>,
}

/// [`Answer::store`] of a host whose engine keeps layers by ChainID.
pub const CLASSIC: &str = "classic";
/// [`Answer::store`] of a host whose engine uses containerd's image store.
pub const CONTAINERD: &str = "containerd";

/// How `image:load`'s refusal of a slim archive starts; clients match it anywhere in a line
/// of the host's stderr (older clients too: keep it as it is).
const REFUSAL: &str = "the archive leaves out layers this host does not hold: ";

/// `image:load`'s refusal of a slim archive that leaves out layers the host does not hold
/// (short digests).
pub fn refusal(missing: &[String]) -> String {
    format!("{REFUSAL}{}; nothing was loaded", missing.join(", "))
}

/// Whether a line of the host's stderr carries [`refusal`].
pub fn is_refusal(line: &str) -> bool {
    line.contains(REFUSAL)
}

/// The client's first line to `image:layers`, sent once the answer line said `delta`: it will
/// ask chunk queries, in this version. A host that sees no greeting ends after the answer; one
/// that sees it keeps, from then on, the content of the layers the app's loads bring.
pub const QUERIES_GREETING: &str = "chunk-queries 1\n";

/// The most keys one query may carry: a 16 GiB layer's worth of average chunks.
pub const MAX_QUERY_KEYS: usize = 1 << 20;

/// Asks which of `keys` the host keeps: `query <count>\n`, then each key's first
/// [`ASKED_LEN`] bytes.
pub fn write_query(to_host: &mut impl Write, keys: &[Key]) -> io::Result<()> {
    writeln!(to_host, "query {}", keys.len())?;
    for key in keys {
        to_host.write_all(&key.asked().0)?;
    }
    to_host.flush()
}

/// The next query from the client; None when it has closed its side.
pub fn read_query(from_client: &mut impl BufRead) -> io::Result<Option<Vec<Asked>>> {
    let mut line = Vec::new();
    if from_client.take(64).read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&line);
    let count = text
        .trim_end()
        .strip_prefix("query ")
        .and_then(|count| count.parse::<usize>().ok())
        .ok_or_else(|| invalid(format!("not a chunk query: {:?}", text.trim_end())))?;
    if count > MAX_QUERY_KEYS {
        return Err(invalid(format!(
            "a chunk query of {count} keys is over the {MAX_QUERY_KEYS} limit"
        )));
    }
    let mut keys = Vec::with_capacity(count);
    let mut key = [0u8; ASKED_LEN];
    for _ in 0..count {
        from_client.read_exact(&mut key)?;
        keys.push(Asked(key));
    }
    Ok(Some(keys))
}

/// The host's answer: `have <count> <kept> <follows>\n`, two bitmaps in hex, bit i (most
/// significant first) of `kept` set when key i is kept, of `follows` when key i's chunk follows
/// key i - 1's in the host's pack (docs/delta.md).
pub fn write_have(
    to_client: &mut impl Write,
    count: usize,
    kept: &[u8],
    follows: &[u8],
) -> io::Result<()> {
    let hex = |bitmap: &[u8]| -> String { bitmap.iter().map(|b| format!("{b:02x}")).collect() };
    let line = format!("have {count} {} {}\n", hex(kept), hex(follows));
    to_client.write_all(line.as_bytes())?;
    to_client.flush()
}

/// Reads the answer to a query of `count` keys: its two bitmaps (kept, follows).
pub fn read_have(from_host: &mut impl BufRead, count: usize) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let bytes = count.div_ceil(8);
    let mut line = Vec::new();
    let limit = 16 + 20 + 4 * bytes as u64 + 2;
    from_host.take(limit).read_until(b'\n', &mut line)?;
    let text = String::from_utf8_lossy(&line);
    let not_an_answer = || {
        invalid(format!(
            "not an answer to a chunk query: {:?}",
            text.trim_end()
        ))
    };
    let rest = text
        .trim_end()
        .strip_prefix("have ")
        .and_then(|rest| rest.strip_prefix(&format!("{count} ")))
        .ok_or_else(not_an_answer)?;
    let (kept, follows) = rest.split_once(' ').ok_or_else(not_an_answer)?;
    let bitmap = |hex: &str| -> io::Result<Vec<u8>> {
        if hex.len() != 2 * bytes {
            return Err(not_an_answer());
        }
        (0..bytes)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid(format!("the answer to a chunk query is not hex: {hex:?}")))
    };
    Ok((bitmap(kept)?, bitmap(follows)?))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// How `image:load`'s refusal of a recipe starts; clients match it anywhere in a line of the
/// host's stderr and send the archive again with that layer whole.
const RECIPE_REFUSAL: &str = "the layer recipe for ";

/// `image:load`'s refusal of the recipe for layer entry `name`, and why.
pub fn recipe_refusal(name: &str, why: &str) -> String {
    format!("{RECIPE_REFUSAL}{name} cannot be used: {why}; nothing was loaded")
}

/// Whether a line of the host's stderr carries [`recipe_refusal`].
pub fn is_recipe_refusal(line: &str) -> bool {
    line.contains(RECIPE_REFUSAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_recognised_through_dokkus_prefix() {
        let line = refusal(&["3f4a1c0e9b2d".into(), "77c0d1a2b3e4".into()]);
        assert_eq!(
            line,
            "the archive leaves out layers this host does not hold: 3f4a1c0e9b2d, 77c0d1a2b3e4; nothing was loaded"
        );
        assert!(is_refusal(&format!(" !     {line}\n")));
        assert!(!is_refusal(
            " !     the archive is not a docker image save\n"
        ));
    }

    #[test]
    fn queries_and_answers_round_trip() {
        let keys = vec![Key([1; 8]), Key([2; 8]), Key([0xff; 8])];
        let mut wire = Vec::new();
        write_query(&mut wire, &keys).unwrap();
        write_query(&mut wire, &[]).unwrap();
        let mut reader = &wire[..];
        let asked: Vec<Asked> = keys.iter().map(Key::asked).collect();
        assert_eq!(
            wire.len(),
            "query 3\n".len() + 3 * ASKED_LEN + "query 0\n".len()
        );
        assert_eq!(read_query(&mut reader).unwrap(), Some(asked));
        assert_eq!(read_query(&mut reader).unwrap(), Some(vec![]));
        assert_eq!(read_query(&mut reader).unwrap(), None);

        let mut wire = Vec::new();
        write_have(
            &mut wire,
            10,
            &[0b1010_0000, 0b0100_0000],
            &[0b0010_0000, 0],
        )
        .unwrap();
        assert_eq!(wire, b"have 10 a040 2000\n");
        assert_eq!(
            read_have(&mut &wire[..], 10).unwrap(),
            (vec![0b1010_0000, 0b0100_0000], vec![0b0010_0000, 0])
        );
        assert!(read_have(&mut &wire[..], 9).is_err());
        assert!(read_have(&mut &b"have 10 a040\n"[..], 10).is_err());
    }

    #[test]
    fn hostile_queries_are_refused() {
        assert!(read_query(&mut &b"hello\n"[..]).is_err());
        let huge = format!("query {}\n", MAX_QUERY_KEYS + 1);
        assert!(read_query(&mut huge.as_bytes()).is_err());
        // Fewer keys than announced: cut short.
        assert!(read_query(&mut &b"query 2\n123456"[..]).is_err());
    }

    #[test]
    fn the_recipe_refusal_is_recognised_through_dokkus_prefix() {
        let line = recipe_refusal("blobs/sha256/3f4a", "it is cut short");
        assert_eq!(
            line,
            "the layer recipe for blobs/sha256/3f4a cannot be used: it is cut short; nothing was loaded"
        );
        assert!(is_recipe_refusal(&format!(" !     {line}\n")));
        assert!(!is_refusal(&line));
    }
}

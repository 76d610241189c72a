//! Shared by the fuzz targets: a model of what `docker image load` sees on its stdin, and the
//! invariants every call of `archive::forward` must keep.
//!
//! [`DockerView`] is a streaming `Write` that reads the forwarded bytes the way Go's
//! `archive/tar` (which docker uses) does: its checksum and number parsing, the ustar/star
//! prefix field, PAX headers (only the last one counts, empty values keep the header's, a global
//! header drops what was pending), GNU long names (which win over a PAX path), GNU sparse names,
//! the old type `\0` with a trailing slash as a directory, header-only types without data, and
//! the end of the archive at two zero blocks. Go's reader being the one that matters, the
//! invariants are:
//!
//! - when `forward` fails, docker has seen no metadata entry (`manifest.json`, `index.json`,
//!   `repositories`, `oci-layout`) and no end-of-archive marker;
//! - when it succeeds, docker reads the stream to the end marker (or refuses it, which imports
//!   nothing) and sees each metadata entry once, after every other entry: nothing was smuggled
//!   past the check under a name this reader took for a layer (the metadata itself is
//!   rewritten to name the chosen image only);
//! - the check runs exactly when the archive is complete, and its error comes back unchanged.

use std::cell::RefCell;
use std::io::{self, Write};

use anyhow::anyhow;
use dokku_image::archive::{self, Contents, Limits};
use dokku_image::reference::Reference;

pub const BLOCK: usize = 512;
const METADATA_NAMES: [&str; 4] = ["manifest.json", "index.json", "repositories", "oci-layout"];
/// Go's archive/tar refuses extension headers larger than this (`maxSpecialFileSize`).
const MAX_SPECIAL_FILE: u64 = 1 << 20;
pub const REJECTED: &str = "fuzz: the check rejects every archive";
/// What the accepting check says of an archive without a tag to choose its image by.
pub const UNNAMED: &str = "fuzz: the archive has no tag to load an image by";

/// The limits the fuzz targets run with: small enough that no input can make a run slow or big.
pub fn limits() -> Limits {
    Limits {
        max_metadata_entry: 1 << 20,
        max_total_bytes: 64 << 20,
        ..Limits::default()
    }
}

/// Where Go's tar reader is in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Expecting more entries.
    Reading,
    /// Two zero blocks at a header position: the archive is complete.
    Ended,
    /// Go's reader would have failed here and docker would import nothing.
    Broken(String),
}

struct Extension {
    kind: u8,
    data: Vec<u8>,
    size: u64,
    /// Data and padding still to come.
    remaining: u64,
}

/// What `docker image load` makes of the bytes written to it.
pub struct DockerView {
    pub written: u64,
    pub state: State,
    /// The metadata entries docker was shown, in order.
    pub metadata: Vec<String>,
    /// A non-metadata entry came after a metadata entry: the metadata was not held back.
    pub entry_after_metadata: Option<String>,
    /// Bytes written after the end marker (docker never reads them).
    pub after_end: u64,
    /// A copy of everything written, when asked for (structure-aware target only).
    pub copy: Option<Vec<u8>>,
    /// With the copy: every entry docker extracts, as (name, type, data length, data hash).
    pub entries: Vec<(String, u8, u64, u64)>,
    /// Entry data still to hash, before the padding.
    data_left: u64,
    block: Vec<u8>,
    skip: u64,
    extension: Option<Extension>,
    /// The records of the last PAX header (Go keeps only the last one before an entry).
    pax: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    long_name: Option<Vec<u8>>,
    zero_block_seen: bool,
}

impl DockerView {
    pub fn new(keep_copy: bool) -> DockerView {
        DockerView {
            written: 0,
            state: State::Reading,
            metadata: Vec::new(),
            entry_after_metadata: None,
            after_end: 0,
            copy: keep_copy.then(Vec::new),
            entries: Vec::new(),
            data_left: 0,
            block: Vec::with_capacity(BLOCK),
            skip: 0,
            extension: None,
            pax: None,
            long_name: None,
            zero_block_seen: false,
        }
    }

    fn consume(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.state != State::Reading {
                self.after_end += data.len() as u64;
                return;
            }
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64) as usize;
                let hashed = self.data_left.min(n as u64) as usize;
                if hashed > 0 {
                    if let Some(entry) = self.entries.last_mut() {
                        entry.3 = fnv(entry.3, &data[..hashed]);
                    }
                    self.data_left -= hashed as u64;
                }
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            if let Some(ext) = &mut self.extension {
                let n = ext.remaining.min(data.len() as u64) as usize;
                let wanted = (ext.size as usize).saturating_sub(ext.data.len()).min(n);
                ext.data.extend_from_slice(&data[..wanted]);
                ext.remaining -= n as u64;
                data = &data[n..];
                if ext.remaining == 0 {
                    let ext = self.extension.take().expect("an extension is being read");
                    self.finish_extension(ext);
                }
                continue;
            }
            let n = (BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.block.len() == BLOCK {
                let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
                self.header(&block);
            }
        }
    }

    fn broken(&mut self, why: impl Into<String>) {
        self.state = State::Broken(why.into());
    }

    /// Go's `Reader.readHeader` and the part of `Reader.next` that handles one header.
    fn header(&mut self, block: &[u8]) {
        let all_zero = block.iter().all(|&b| b == 0);
        if self.zero_block_seen {
            if all_zero {
                self.state = State::Ended;
            } else {
                self.broken("a header after a single zero block");
            }
            return;
        }
        if all_zero {
            self.zero_block_seen = true;
            return;
        }
        let Some(format) = go_format(block) else {
            return self.broken("bad header checksum");
        };
        let mut ok = true;
        let mut numeric = |range: std::ops::Range<usize>| match go_numeric(&block[range]) {
            Some(n) => n,
            None => {
                ok = false;
                0
            }
        };
        let _mode = numeric(100..108);
        let _uid = numeric(108..116);
        let _gid = numeric(116..124);
        let mut size = numeric(124..136);
        let _mtime = numeric(136..148);
        let mut name = go_string(&block[..100]).to_vec();
        if format != Format::V7 {
            let _devmajor = numeric(329..337);
            let _devminor = numeric(337..345);
            let prefix = match format {
                Format::Ustar => go_string(&block[345..500]),
                Format::Star => {
                    let _atime = numeric(476..488);
                    let _ctime = numeric(488..500);
                    go_string(&block[345..476])
                }
                _ => &[][..],
            };
            if !prefix.is_empty() {
                let mut joined = prefix.to_vec();
                joined.push(b'/');
                joined.extend_from_slice(&name);
                name = joined;
            }
        }
        if !ok {
            return self.broken("bad numeric field");
        }
        let mut kind = block[156];
        if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            if size < 0 {
                return self.broken("negative size");
            }
            if size as u64 > MAX_SPECIAL_FILE {
                return self.broken("extension header too large");
            }
            self.extension = Some(Extension {
                kind,
                data: Vec::with_capacity(size as usize),
                size: size as u64,
                remaining: size as u64 + padding(size as u64),
            });
            return;
        }
        if kind == b'S' {
            // Old GNU sparse files carry extension blocks; docker archives never hold them.
            return self.broken("old GNU sparse file");
        }
        // mergePAX: empty values keep the header's value.
        let pax = self.pax.take().unwrap_or_default();
        let record = |key: &[u8]| {
            pax.iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_slice())
                .filter(|v| !v.is_empty())
        };
        for (key, value) in &pax {
            if value.is_empty() {
                continue;
            }
            let valid = match key.as_slice() {
                b"uid" | b"gid" | b"size" => go_int(value).is_some(),
                b"atime" | b"mtime" | b"ctime" => go_pax_time(value),
                _ => true,
            };
            if !valid {
                return self.broken("bad PAX value");
            }
        }
        if let Some(path) = record(b"path") {
            name = path.to_vec();
        }
        if let Some(value) = record(b"size") {
            size = go_int(value).expect("checked above");
        }
        if let Some(long) = self.long_name.take().filter(|l| !l.is_empty()) {
            name = long;
        }
        if kind == 0 {
            kind = if name.ends_with(b"/") { b'5' } else { b'0' };
        }
        if size < 0 {
            return self.broken("negative size");
        }
        let data_len = if matches!(kind, b'1'..=b'6') {
            0
        } else {
            size as u64
        };
        // GNU sparse files in PAX form may rename the entry.
        let (major, minor) = (record(b"GNU.sparse.major"), record(b"GNU.sparse.minor"));
        let sparse = match (major, minor) {
            (Some(b"0"), Some(b"0" | b"1")) | (Some(b"1"), Some(b"0")) => true,
            (None, None) => record(b"GNU.sparse.map").is_some(),
            _ => false,
        };
        if sparse {
            if let Some(sparse_name) = record(b"GNU.sparse.name") {
                name = sparse_name.to_vec();
            }
        }
        let name = clean(&String::from_utf8_lossy(&name));
        if self.copy.is_some() {
            self.entries
                .push((name.clone(), kind, data_len, FNV_OFFSET));
            self.data_left = data_len;
        }
        if METADATA_NAMES.contains(&name.as_str()) {
            self.metadata.push(name);
        } else if !self.metadata.is_empty() && self.entry_after_metadata.is_none() {
            self.entry_after_metadata = Some(name);
        }
        self.skip = data_len + padding(data_len);
    }

    fn finish_extension(&mut self, ext: Extension) {
        match ext.kind {
            b'x' | b'g' => {
                let Some(records) = go_pax_records(&ext.data) else {
                    return self.broken("bad PAX record");
                };
                if ext.kind == b'x' {
                    // parsePAX replaces what an earlier PAX header said.
                    self.pax = Some(records);
                } else {
                    // A global header is returned as an entry of its own: what was pending
                    // for the next entry is dropped.
                    self.pax = None;
                    self.long_name = None;
                }
            }
            b'L' => self.long_name = Some(go_string(&ext.data).to_vec()),
            _ => {}
        }
    }
}

impl Write for DockerView {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        if let Some(copy) = &mut self.copy {
            copy.extend_from_slice(buf);
        }
        self.consume(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The hash of no data, where `fnv` starts.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, the hash of each entry's data in `DockerView::entries`.
pub fn fnv(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    hash
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Star,
    Gnu,
}

/// Go's `block.getFormat`: `None` when the checksum does not match.
fn go_format(block: &[u8]) -> Option<Format> {
    let stored = go_octal(&block[148..156])?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && stored != signed {
        return None;
    }
    let (magic, version, trailer) = (&block[257..263], &block[263..265], &block[508..512]);
    Some(if magic == b"ustar\0" && trailer == b"tar\0" {
        Format::Star
    } else if magic == b"ustar\0" {
        Format::Ustar
    } else if magic == b"ustar " && version == b" \0" {
        Format::Gnu
    } else {
        Format::V7
    })
}

/// Go's `parser.parseString`: up to the first NUL.
fn go_string(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Go's `parser.parseOctal`: spaces and NULs trimmed at both ends, then up to the first NUL.
fn go_octal(field: &[u8]) -> Option<i64> {
    let start = field.iter().position(|&b| b != b' ' && b != 0);
    let Some(start) = start else {
        return Some(0);
    };
    let end = field
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .expect("one byte is kept")
        + 1;
    let text = go_string(&field[start..end]);
    if text.is_empty() || !text.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    let mut n: u64 = 0;
    for &b in text {
        n = n.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n as i64)
}

/// Go's `parser.parseNumeric`: base-256 when the high bit is set, else octal.
fn go_numeric(field: &[u8]) -> Option<i64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let inv = if field[0] & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in field.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None;
            }
            x = x << 8 | u64::from(c);
        }
        if x >> 63 > 0 {
            return None;
        }
        return Some(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    go_octal(field)
}

/// `strconv.ParseInt(s, 10, 64)`.
fn go_int(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude: i128 = digits.parse().ok()?;
    let value = if text.starts_with('-') {
        -magnitude
    } else {
        magnitude
    };
    i64::try_from(value).ok()
}

/// Go's `parsePAXTime` accepts `[sign]digits[.digits]`.
fn go_pax_time(text: &[u8]) -> bool {
    let (secs, nanos) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &[][..]),
    };
    go_int(secs).is_some() && nanos.iter().all(u8::is_ascii_digit)
}

/// Go's `parsePAX`: every record must be `LEN KEY=VALUE\n` with LEN counting the whole record.
fn go_pax_records(data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut records = Vec::new();
    let mut rest = data;
    let mut sparse_pairs = 0usize;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let n = go_int(&rest[..space])?;
        if n < 5 || n as u64 > rest.len() as u64 {
            return None;
        }
        let n = n as usize;
        if n <= space + 1 {
            return None;
        }
        let record = &rest[space + 1..n - 1];
        if rest[n - 1] != b'\n' {
            return None;
        }
        let equals = record.iter().position(|&b| b == b'=')?;
        let (key, value) = (&record[..equals], &record[equals + 1..]);
        if key.is_empty() {
            return None;
        }
        let nul_checked = match key {
            b"path" | b"linkpath" | b"uname" | b"gname" => value,
            _ => key,
        };
        if nul_checked.contains(&0) {
            return None;
        }
        match key {
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let expected: &[u8] = if sparse_pairs.is_multiple_of(2) {
                    b"GNU.sparse.offset"
                } else {
                    b"GNU.sparse.numbytes"
                };
                if key != expected || value.contains(&b',') {
                    return None;
                }
                sparse_pairs += 1;
            }
            _ => records.push((key.to_vec(), value.to_vec())),
        }
        rest = &rest[n..];
    }
    if sparse_pairs > 0 {
        records.push((b"GNU.sparse.map".to_vec(), b"0".to_vec()));
    }
    Some(records)
}

/// `filepath.Clean` for the names docker extracts: no empty or `.` parts, `..` pops.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// What one `forward` call did.
pub struct Run {
    pub result: anyhow::Result<Contents>,
    pub view: DockerView,
    /// What the check was shown, when `forward` got as far as calling it.
    pub checked: Option<Contents>,
}

/// Runs `archive::forward` on `input` into a [`DockerView`], with a check that accepts every
/// archive or rejects every archive, and asserts the invariants that hold for any input.
pub fn run_forward(input: &[u8], accept: bool, keep_copy: bool) -> Run {
    let limits = limits();
    let checked = RefCell::new(None);
    // For looking into a crash: `FUZZ_DUMP_SINK=file` keeps what docker was sent.
    let dump = std::env::var_os("FUZZ_DUMP_SINK");
    let mut view = DockerView::new(keep_copy || dump.is_some());
    let result = archive::forward(
        input,
        &mut view,
        &limits,
        &mut archive::NoContent,
        |contents| {
            *checked.borrow_mut() = Some(contents.clone());
            if !accept {
                return Err(anyhow!(REJECTED));
            }
            let name = contents
                .all_tags()
                .iter()
                .find_map(|tag| Reference::parse(tag).ok())
                .ok_or_else(|| anyhow!(UNNAMED))?;
            contents.choose(&name)
        },
    )
    .map(|forwarded| forwarded.contents);
    let checked = checked.into_inner();
    if let (Some(path), Some(copy)) = (&dump, &view.copy) {
        let suffix = if accept { "accepted" } else { "rejected" };
        let mut path = path.clone();
        path.push(format!(".{suffix}"));
        std::fs::write(&path, copy).expect("writing FUZZ_DUMP_SINK");
    }
    match &result {
        Err(error) => {
            assert_ne!(
                view.state,
                State::Ended,
                "forward failed ({error:#}) but docker saw the end-of-archive marker"
            );
            assert!(
                view.metadata.is_empty(),
                "forward failed ({error:#}) but docker saw {:?}",
                view.metadata
            );
            let from_check = if accept { UNNAMED } else { REJECTED };
            if checked.is_some() {
                assert_eq!(
                    error.to_string(),
                    from_check,
                    "the check's error is returned as is"
                );
            } else {
                assert_ne!(error.to_string(), from_check);
            }
        }
        Ok(contents) => {
            assert!(accept, "forward succeeded although the check rejected");
            assert_eq!(
                checked.as_ref(),
                Some(contents),
                "the check saw other contents"
            );
            // Go's reader may refuse what `forward` let through (a garbage mode field, a bad
            // global PAX header): docker then fails and imports nothing, which is safe. Where it
            // does read on, it must end exactly where `forward` ended.
            match &view.state {
                State::Ended => {}
                State::Broken(why) => assert!(
                    std::env::var_os("FUZZ_STRICT_DOCKER").is_none(),
                    "forward succeeded but docker would fail: {why}"
                ),
                State::Reading => panic!("docker never saw the end of the archive"),
            }
            if view.state == State::Ended {
                assert_eq!(view.after_end, 0, "bytes after the end-of-archive marker");
            }
            assert_eq!(
                view.entry_after_metadata, None,
                "docker saw metadata {:?} before other entries: it was not held back",
                view.metadata
            );
            let mut names = view.metadata.clone();
            names.sort();
            names.dedup();
            assert_eq!(
                names.len(),
                view.metadata.len(),
                "docker saw {:?}",
                view.metadata
            );
            assert!(
                matches!(view.state, State::Broken(_))
                    || view
                        .metadata
                        .iter()
                        .any(|m| m == "manifest.json" || m == "index.json"),
                "forward succeeded but docker saw no manifest: {:?}",
                view.metadata
            );
            assert!(
                view.written <= limits.max_total_bytes + 2 * BLOCK as u64,
                "wrote {} bytes, more than the input may hold",
                view.written
            );
            check_contents(contents);
        }
    }
    Run {
        result,
        view,
        checked,
    }
}

/// What any `Contents` that `forward` returns must satisfy.
pub fn check_contents(contents: &Contents) {
    assert!(
        !contents.images.is_empty(),
        "an archive without images passed"
    );
    for image in &contents.images {
        let hex = image.config.hex();
        assert!(
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "bad image ID {:?}",
            image.config
        );
        let mut unique = image.tags.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            image.tags.len(),
            "duplicate tags in {image:?}"
        );
    }
    let mut ids: Vec<&str> = contents.images.iter().map(|i| i.config.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), contents.images.len(), "one image listed twice");
    // Every tag the archive holds finds an image (maybe an earlier one holding an equal tag).
    for tag in contents.all_tags() {
        if let Ok(reference) = Reference::parse(&tag) {
            assert!(
                contents.find(&reference).is_some(),
                "tag {tag:?} is in the archive but find() misses it"
            );
        }
    }
}

//! The registry the client serves on a loopback port for the client's own engine to push to
//! (docs/registry.md): the part of the distribution API an engine's push uses, no more.
//!
//! - `GET /v2/` answers 200; a TLS ClientHello gets a plain `HTTP/1.0 400` so that
//!   containerd's resolver, which tries HTTPS first, falls back to HTTP.
//! - `HEAD /v2/<name>/blobs/<digest>` answers 200 for the blobs [`Registry::set_present`] names
//!   (those the host holds), so the engine uploads only the others.
//! - Uploads (`POST …/blobs/uploads/`, `PATCH`, `PUT …?digest=`) go into the [`Blobs`] sink:
//!   a monolithic `PUT` streams straight through; chunks sent by `PATCH` wait in a temp file
//!   until the digest is known. A body whose bytes do not match its digest spoils the push.
//! - `PUT /v2/<name>/manifests/<ref>` keeps the manifest (small JSON) in memory; the last one
//!   put by tag is the pushed image's root.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The largest manifest or index kept: far more than any engine writes.
const MAX_MANIFEST: u64 = 4 << 20;
/// The longest request line or header line read.
const MAX_LINE: u64 = 16 << 10;
/// The most header lines a request may have.
const MAX_HEADERS: usize = 100;

/// Where uploaded blobs go, one at a time.
pub trait Blobs: Send {
    /// Takes blob `digest` of `size` bytes from `data`, which fails unless it yields exactly
    /// those bytes.
    fn blob(&mut self, digest: &Digest, size: u64, data: &mut dyn Read) -> io::Result<()>;
}

/// A manifest or index the engine put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// What one push delivered.
#[derive(Debug, Default)]
pub struct Delivered {
    /// By digest.
    pub manifests: HashMap<Digest, Manifest>,
    /// The digest of the last manifest put by tag.
    pub root: Option<Digest>,
}

struct State {
    present: Option<HashSet<Digest>>,
    delivered: Delivered,
    written: HashSet<Digest>,
    spools: HashMap<u64, File>,
}

struct Shared {
    state: Mutex<State>,
    sink: Mutex<Option<Box<dyn Blobs>>>,
    spoiled: Mutex<Option<String>>,
    next_upload: AtomicU64,
    closed: AtomicBool,
}

/// The server: a listener on 127.0.0.1 and a thread per connection.
pub struct Registry {
    port: u16,
    shared: Arc<Shared>,
}

impl Registry {
    /// Listens on a free port of 127.0.0.1. Every blob is present until
    /// [`Registry::set_present`] says otherwise.
    pub fn start() -> io::Result<Registry> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                present: None,
                delivered: Delivered::default(),
                written: HashSet::new(),
                spools: HashMap::new(),
            }),
            sink: Mutex::new(None),
            spoiled: Mutex::new(None),
            next_upload: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accepting);
                thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Ok(Registry { port, shared })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on `HEAD` answers 200 only for these blobs (and those uploaded from now on).
    pub fn set_present(&self, present: HashSet<Digest>) {
        let mut state = lock(&self.shared.state);
        state.present = Some(present);
        state.written.clear();
    }

    /// From now on uploaded blobs go to `sink` (until then they are read and dropped).
    pub fn set_sink(&self, sink: Box<dyn Blobs>) {
        *lock(&self.shared.sink) = Some(sink);
    }

    /// From now on uploaded blobs are read and dropped.
    pub fn clear_sink(&self) {
        lock(&self.shared.sink).take();
    }

    /// What the pushes so far delivered, and empties it for the next.
    pub fn take_delivered(&self) -> Delivered {
        std::mem::take(&mut lock(&self.shared.state).delivered)
    }

    /// Why the blobs sent to the sink cannot be trusted, when they cannot.
    pub fn spoiled(&self) -> Option<String> {
        lock(&self.shared.spoiled).clone()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Request {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One connection: requests one after another until the client closes it.
fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut output = stream.try_clone()?;
    let mut input = BufReader::with_capacity(256 * 1024, stream);
    if input.fill_buf()?.first() == Some(&0x16) {
        // A TLS ClientHello: containerd tries HTTP when the answer starts with `HTTP/`.
        output.write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(());
    }
    while let Some(request) = read_request(&mut input)? {
        let mut body = Body::new(&mut input, &request)?;
        let answer = handle(&request, &mut body, shared);
        // Whatever the handler left of the body is read, so the next request starts clean.
        io::copy(&mut body, &mut io::sink())?;
        let answer = answer.unwrap_or_else(|err| Answer::error(500, "UNKNOWN", &err.to_string()));
        answer.write_to(&mut output, request.method == "HEAD")?;
    }
    Ok(())
}

fn read_line(input: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if input.take(MAX_LINE).read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a header line too long",
        ));
    }
    Ok(Some(
        String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    ))
}

fn read_request(input: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some(line) = read_line(input)? else {
        return Ok(None);
    };
    let mut words = line.split(' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not HTTP"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), percent_decoded(value)))
        .collect();
    let mut headers = HashMap::new();
    loop {
        let Some(line) = read_line(input)? else {
            return Ok(None);
        };
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many headers",
            ));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers,
    }))
}

/// `%3A` and the like, as a digest in a query arrives (`sha256%3A…`).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request's body: `Content-Length` bytes, or chunks.
enum Body<'i, R: BufRead> {
    Sized {
        input: &'i mut R,
        left: u64,
    },
    Chunked {
        input: &'i mut R,
        left: u64,
        done: bool,
    },
}

impl<'i, R: BufRead> Body<'i, R> {
    fn new(input: &'i mut R, request: &Request) -> io::Result<Body<'i, R>> {
        if request
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            return Ok(Body::Chunked {
                input,
                left: 0,
                done: false,
            });
        }
        let left = match request.header("content-length") {
            Some(text) => text
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?,
            None => 0,
        };
        Ok(Body::Sized { input, left })
    }

    /// The body's length, when the request said it.
    fn length(&self) -> Option<u64> {
        match self {
            Body::Sized { left, .. } => Some(*left),
            Body::Chunked { .. } => None,
        }
    }
}

impl<R: BufRead> Read for Body<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Sized { input, left } => {
                if *left == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let max = buf.len().min(*left as usize);
                let count = input.read(&mut buf[..max])?;
                if count == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= count as u64;
                Ok(count)
            }
            Body::Chunked { input, left, done } => {
                if *done || buf.is_empty() {
                    return Ok(0);
                }
                if *left == 0 {
                    let line = read_line(*input)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    *left = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                    })?;
                    if *left == 0 {
                        // Trailers, then the empty line.
                        while read_line(*input)?.is_some_and(|line| !line.is_empty()) {}
                        *done = true;
                        return Ok(0);
                    }
                }
                let max = buf.len().min(*left as usize);
                let count = input.read(&mut buf[..max])?;
                if count == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= count as u64;
                if *left == 0 {
                    read_line(*input)?;
                }
                Ok(count)
            }
        }
    }
}

struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    fn error(status: u16, code: &str, message: &str) -> Answer {
        let mut answer = Answer::new(status).with("Content-Type", "application/json");
        answer.body = serde_json::json!({"errors": [{"code": code, "message": message}]})
            .to_string()
            .into_bytes();
        answer
    }

    fn write_to(&self, output: &mut impl Write, head: bool) -> io::Result<()> {
        let reason = match self.status {
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Error",
        };
        let mut text = format!(
            "HTTP/1.1 {} {reason}\r\nDocker-Distribution-API-Version: registry/2.0\r\n",
            self.status
        );
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        output.write_all(text.as_bytes())?;
        if !head {
            output.write_all(&self.body)?;
        }
        output.flush()
    }
}

/// `/v2/<name>/<kind>/<rest>`: the name may have slashes; the last `blobs` or `manifests`
/// ends it.
fn route(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    for kind in [
        "/blobs/uploads/",
        "/blobs/uploads",
        "/blobs/",
        "/manifests/",
    ] {
        if let Some(at) = rest.rfind(kind) {
            return Some((
                &rest[..at],
                kind.trim_matches('/'),
                &rest[at + kind.len()..],
            ));
        }
    }
    None
}

fn handle<R: BufRead>(
    request: &Request,
    body: &mut Body<'_, R>,
    shared: &Shared,
) -> io::Result<Answer> {
    let method = request.method.as_str();
    if request.path == "/v2/" || request.path == "/v2" {
        return Ok(Answer::new(200)
            .with("Content-Type", "application/json")
            .with_body(b"{}"));
    }
    let Some((name, kind, rest)) = route(&request.path) else {
        return Ok(Answer::error(404, "NAME_UNKNOWN", "no such route"));
    };
    match (method, kind) {
        ("HEAD" | "GET", "blobs") => {
            let present = Digest::parse(rest).is_some_and(|digest| {
                let state = lock(&shared.state);
                state.written.contains(&digest)
                    || state
                        .present
                        .as_ref()
                        .is_none_or(|present| present.contains(&digest))
            });
            Ok(if present && method == "HEAD" {
                Answer::new(200).with("Docker-Content-Digest", rest)
            } else {
                Answer::error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            })
        }
        ("HEAD" | "GET", "manifests") => {
            Ok(Answer::error(404, "MANIFEST_UNKNOWN", "manifest unknown"))
        }
        ("POST", "blobs/uploads") => {
            if let Some(digest) = request.query.get("digest").and_then(|d| Digest::parse(d)) {
                take_blob(shared, &digest, body)?;
                return Ok(created(name, &digest));
            }
            let id = shared.next_upload.fetch_add(1, Ordering::SeqCst);
            Ok(upload_answer(202, name, id, 0))
        }
        ("PATCH", "blobs/uploads") => {
            let id = upload_id(rest)?;
            let mut spool = match lock(&shared.state).spools.remove(&id) {
                Some(file) => file,
                None => tempfile::tempfile()?,
            };
            spool.seek(io::SeekFrom::End(0))?;
            io::copy(body, &mut spool)?;
            let end = spool.stream_position()?;
            lock(&shared.state).spools.insert(id, spool);
            Ok(upload_answer(202, name, id, end))
        }
        ("PUT", "blobs/uploads") => {
            let id = upload_id(rest)?;
            let digest = request
                .query
                .get("digest")
                .and_then(|d| Digest::parse(d))
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no digest"))?;
            let spool = lock(&shared.state).spools.remove(&id);
            match spool {
                Some(mut spool) => {
                    spool.seek(io::SeekFrom::End(0))?;
                    io::copy(body, &mut spool)?;
                    let size = spool.stream_position()?;
                    spool.rewind()?;
                    let mut sized = Body::Sized {
                        input: &mut BufReader::new(spool),
                        left: size,
                    };
                    take_blob(shared, &digest, &mut sized)?;
                }
                None => take_blob(shared, &digest, body)?,
            }
            Ok(created(name, &digest))
        }
        ("PUT", "manifests") => {
            let mut bytes = Vec::new();
            body.take(MAX_MANIFEST + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > MAX_MANIFEST {
                return Ok(Answer::error(400, "MANIFEST_INVALID", "manifest too large"));
            }
            let digest = Digest::of(&bytes);
            let media_type = request
                .header("content-type")
                .map(str::to_string)
                .or_else(|| media_type_of(&bytes))
                .unwrap_or_default();
            let mut state = lock(&shared.state);
            if Digest::parse(rest).is_none() {
                state.delivered.root = Some(digest.clone());
            }
            state
                .delivered
                .manifests
                .insert(digest.clone(), Manifest { media_type, bytes });
            Ok(Answer::new(201)
                .with("Location", format!("/v2/{name}/manifests/{digest}"))
                .with("Docker-Content-Digest", digest.to_string()))
        }
        _ => Ok(Answer::error(405, "UNSUPPORTED", "not supported here")),
    }
}

impl Answer {
    fn with_body(mut self, body: &[u8]) -> Answer {
        self.body = body.to_vec();
        self
    }
}

fn media_type_of(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(value.get("mediaType")?.as_str()?.to_string())
}

fn upload_id(rest: &str) -> io::Result<u64> {
    rest.parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "no such upload"))
}

fn upload_answer(status: u16, name: &str, id: u64, end: u64) -> Answer {
    Answer::new(status)
        .with("Location", format!("/v2/{name}/blobs/uploads/{id}"))
        .with("Docker-Upload-UUID", id.to_string())
        .with("Range", format!("0-{}", end.saturating_sub(1)))
}

fn created(name: &str, digest: &Digest) -> Answer {
    Answer::new(201)
        .with("Location", format!("/v2/{name}/blobs/{digest}"))
        .with("Docker-Content-Digest", digest.to_string())
}

/// A blob's bytes into the sink, once per digest, checked against it. A blob sent twice (an
/// engine's retry) is read and dropped the second time.
fn take_blob<R: BufRead>(
    shared: &Shared,
    digest: &Digest,
    body: &mut Body<'_, R>,
) -> io::Result<()> {
    let Some(size) = body.length() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a blob of unknown length",
        ));
    };
    let mut sink = lock(&shared.sink);
    let fresh = !lock(&shared.state).written.contains(digest);
    let Some(blobs) = sink.as_mut().filter(|_| fresh) else {
        io::copy(body, &mut io::sink())?;
        return Ok(());
    };
    let mut checked = Checked {
        inner: body,
        sha: Sha256::new(),
    };
    let taken = blobs.blob(digest, size, &mut checked);
    let got = Digest::from_sha256(checked.sha.finalize().into());
    let why = match taken {
        Err(err) => Some(format!("blob {digest}: {err}")),
        Ok(()) if &got != digest => Some(format!("blob {digest} arrived as {got}")),
        Ok(()) => None,
    };
    if let Some(why) = why {
        lock(&shared.spoiled).get_or_insert(why.clone());
        return Err(io::Error::other(why));
    }
    lock(&shared.state).written.insert(digest.clone());
    Ok(())
}

struct Checked<'b, R: Read> {
    inner: &'b mut R,
    sha: Sha256,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.sha.update(&buf[..count]);
        Ok(count)
    }
}

#[cfg(test)]
mod tests;

//! The content an app keeps on the host for layer recipes (docs/delta.md): packs written beside
//! the app's loads once a client that sends recipes has greeted `image:layers` for it, the
//! chunk queries `image:layers` answers from them, the recipes `image:load` rebuilds from them,
//! and their removal with the app's images. Only the app's own packs are ever read for it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::Context as _;

use crate::archive::{Compression, Content};
use crate::delta::pack::{self, FinishedPack, Packs};
use crate::delta::rebuild;
use crate::digest::Digest;
use crate::docker::Docker;
use crate::host::{self, Host};
use crate::protocol;
use crate::record;
use crate::retention;
use crate::state;

/// Chunks of a layer's data in flight to its packer: a few read-ahead chunks at most.
const IN_FLIGHT: usize = 8;
/// How long `image:layers` waits, after its answer, for a client's greeting before it ends,
/// so that a person who runs it by hand is not kept waiting on stdin.
const GREETING_WAIT: Duration = Duration::from_secs(2);

/// One app's kept content, for a load: rebuilds its recipes, and packs the layers it
/// receives once a client that sends recipes has greeted (the app's content folder exists).
pub struct AppContent {
    dir: PathBuf,
    packs: Option<Arc<Packs>>,
    keep: bool,
    packers: Vec<JoinHandle<Option<FinishedPack>>>,
}

impl AppContent {
    pub fn for_load(host: &Host, app: &str) -> AppContent {
        let dir = state::content_dir(host, app);
        AppContent {
            keep: dir.is_dir(),
            dir,
            packs: None,
            packers: Vec::new(),
        }
    }

    /// Once the load succeeded: puts the packs written beside it in place, owned by the
    /// system user; returns how many. Dropped instead, they are removed.
    pub fn commit(mut self, host: &Host) -> anyhow::Result<usize> {
        let mut committed = 0;
        for packer in std::mem::take(&mut self.packers) {
            let Ok(Some(pack)) = packer.join() else {
                continue;
            };
            let diff_id = pack.diff_id().clone();
            pack.commit()
                .with_context(|| format!("cannot keep the content of layer {diff_id}"))?;
            let (pack_file, idx_file) = pack::pack_paths(&self.dir, &diff_id);
            host.chown_to_system_user(&pack_file);
            host.chown_to_system_user(&idx_file);
            committed += 1;
        }
        Ok(committed)
    }

    fn packs(&mut self) -> io::Result<&Arc<Packs>> {
        if self.packs.is_none() {
            self.packs = Some(Arc::new(Packs::open(&self.dir)?));
        }
        Ok(self.packs.as_ref().expect("opened above"))
    }
}

/// A load that failed keeps nothing: each packer is waited for (its stream has ended with the
/// load's), and what it wrote is removed with its pack.
impl Drop for AppContent {
    fn drop(&mut self) {
        for packer in self.packers.drain(..) {
            drop(packer.join());
        }
    }
}

impl Content for AppContent {
    fn rebuild(
        &mut self,
        recipe: &mut dyn Read,
        spool: &mut File,
        max_size: u64,
    ) -> Result<(u64, Digest), String> {
        let packs = Arc::clone(
            self.packs()
                .map_err(|err| format!("the kept content cannot be read: {err}"))?,
        );
        let rebuilt = rebuild::rebuild(recipe, &packs, io::BufWriter::new(&mut *spool), max_size)
            .map_err(|err| err.to_string())?;
        // Packed from the spool at the packer's own pace, so that the layer's way into the
        // engine never waits for it; a spool that cannot be shared is not packed.
        if let (true, Ok(file)) = (self.keep, spool.try_clone()) {
            let dir = self.dir.clone();
            self.packers.push(thread::spawn(move || {
                let layer = io::BufReader::with_capacity(256 * 1024, ReadAt { file, at: 0 });
                pack::pack_layer(layer, &dir, Some(&packs)).ok()
            }));
        }
        Ok((rebuilt.size, rebuilt.diff_id))
    }

    fn keeper(&mut self) -> Option<Box<dyn Write>> {
        if !self.keep {
            return None;
        }
        let (sender, receiver) = mpsc::sync_channel(IN_FLIGHT);
        let dir = self.dir.clone();
        // Chunks the app keeps already are copied, not compressed again; kept content that
        // cannot be read is compressed anew.
        let kept = self.packs().ok().cloned();
        self.packers.push(thread::spawn(move || {
            pack_stream(receiver, &dir, kept.as_deref())
        }));
        Some(Box::new(Keeper(Some(sender))))
    }
}

/// Packs the layer whose data arrives on `receiver`, as the archive holds it (plain, gzip or
/// zstd), copying the frames of chunks `kept` holds; None when it is not a layer or the stream
/// stopped.
fn pack_stream(
    receiver: Receiver<Vec<u8>>,
    dir: &std::path::Path,
    kept: Option<&Packs>,
) -> Option<FinishedPack> {
    let mut data = Received {
        receiver,
        chunk: Vec::new(),
        at: 0,
    };
    let mut head = [0u8; 6];
    data.read_exact(&mut head).ok()?;
    let whole = (&head[..]).chain(data);
    let packed = match Compression::detect(&head) {
        Compression::None => pack::pack_layer(whole, dir, kept),
        Compression::Gzip => pack::pack_layer(flate2::read::GzDecoder::new(whole), dir, kept),
        Compression::Zstd => {
            pack::pack_layer(zstd::stream::read::Decoder::new(whole).ok()?, dir, kept)
        }
        // No engine compresses a layer so: not a layer.
        Compression::Bzip2 | Compression::Xz => return None,
    };
    packed.ok()
}

/// Reads a file from its start by position: the offset it shares with its clones, which the
/// load reads it by, is left alone.
struct ReadAt {
    file: File,
    at: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.file.read_at(buf, self.at)?;
        self.at += count as u64;
        Ok(count)
    }
}

/// The write end of a packer's stream. A packer that gave up (not a layer) closes its end;
/// writes then go nowhere, and the load goes on.
struct Keeper(Option<SyncSender<Vec<u8>>>);

impl Write for Keeper {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(sender) = &self.0 {
            if sender.send(data.to_vec()).is_err() {
                self.0 = None;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The read end of a packer's stream.
struct Received {
    receiver: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let count = buf.len().min(self.chunk.len() - self.at);
        buf[..count].copy_from_slice(&self.chunk[self.at..self.at + count]);
        self.at += count;
        Ok(count)
    }
}

/// After `image:layers`'s answer: when the client greets within [`GREETING_WAIT`], answers its
/// chunk queries from the app's packs until it closes its side.
pub fn serve_queries(host: &Host, app: &str) -> anyhow::Result<()> {
    let stdin = io::stdin();
    if !greeted(&stdin)? {
        return Ok(());
    }
    let mut from_client = stdin.lock();
    let mut greeting = Vec::new();
    (&mut from_client)
        .take(64)
        .read_until(b'\n', &mut greeting)?;
    if greeting != protocol::QUERIES_GREETING.as_bytes() {
        return Ok(());
    }
    // From now on the app's loads keep their layers' content for the next push's recipes.
    let dir = state::content_dir(host, app);
    if !dir.is_dir() {
        host::create_dirs(&dir).context("cannot make the app's content folder")?;
        host.chown_to_system_user(&dir);
    }
    // Kept content that cannot be read (a damaged index) keeps nothing: the layers go whole.
    let packs = Packs::open(&dir).ok();
    let mut to_client = io::stdout().lock();
    while let Some(keys) = protocol::read_query(&mut from_client)? {
        let (kept, follows) = match &packs {
            Some(packs) => (packs.bitmap(&keys), packs.follows(&keys)),
            None => (
                pack::bitmap(keys.len(), |_| false),
                pack::bitmap(keys.len(), |_| false),
            ),
        };
        protocol::write_have(&mut to_client, keys.len(), &kept, &follows)?;
    }
    Ok(())
}

/// Whether stdin has something to read (or is closed) within [`GREETING_WAIT`]; never for a
/// terminal.
fn greeted(stdin: &io::Stdin) -> anyhow::Result<bool> {
    use std::io::IsTerminal;
    if stdin.is_terminal() {
        return Ok(false);
    }
    let mut fds = [rustix::event::PollFd::new(
        stdin,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: GREETING_WAIT.as_secs() as i64,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut fds, Some(&timeout)).context("cannot wait on stdin")?;
    Ok(ready > 0)
}

/// Removes the app's packs of layers that no image it keeps (`keep-images`) has: the content
/// goes with the images.
pub fn prune_with_images(host: &Host, app: &str, docker: &Docker) -> anyhow::Result<()> {
    let dir = state::content_dir(host, app);
    if !dir.exists() {
        return Ok(());
    }
    let (_, _, keep) = retention::keep_images(host, app)?;
    let mut layers = HashSet::new();
    for id in retention::retained(&record::app_deploys(host, app)?, keep) {
        if let Some(info) = docker.inspect(id.as_str())? {
            layers.extend(info.diff_ids);
        }
    }
    pack::prune(&dir, &layers).with_context(|| format!("cannot prune {}", dir.display()))?;
    Ok(())
}

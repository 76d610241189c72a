//! A layer's recipe written as the layer streams (format 2, docs/delta.md "Queries as the layer
//! streams"): its chunks' keys are asked in batches while the save goes on, and a second thread
//! reads the host's answers in order and writes each batch's operations as soon as its answer
//! is in, so that the recipe is done about when the layer is read. The host answers each query
//! as it comes; queries and answers never wait on each other beyond [`IN_FLIGHT`] batches.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use crate::delta::chunks::{self, Key, Split};
use crate::delta::cuts::{Cut, CutWriter};
use crate::delta::ops::Ops;
use crate::delta::recipe::{Kept, Totals};
use crate::protocol;

/// The keys one query asks: a few MiB of a layer's chunks.
const BATCH_KEYS: usize = 1024;
/// The most pieces in a batch, whatever its keys: a layer of one chunk repeated asks nothing
/// new, and its batch must still end.
const BATCH_PIECES: usize = 16 * BATCH_KEYS;
/// Batches asked and not yet written.
const IN_FLIGHT: usize = 4;
/// How much of the spooled layer the writer reads at a time.
const WINDOW: usize = 256 * 1024;

/// What streaming a layer gave.
pub struct Streamed {
    /// The first pass's Split; an InvalidData error when the layer is not a tar.
    pub split: io::Result<Split>,
    /// What the host said it keeps of the layer's chunks.
    pub kept: Kept,
    /// The recipe's operations (after a hole for its header), when the first batch had kept
    /// chunks; else none were written, and a recipe, if any, is written after the pass.
    pub ops: Option<(File, Totals)>,
    /// A query or its answer failed: the session can ask no more.
    pub broken: bool,
}

/// Reads the layer `data` to its end, spooling it to `spool` and its cuts to `cuts`, asking the
/// host which chunks it keeps as it goes; writes the recipe's operations to `recipe` from its
/// current offset when the first batch's answer has kept chunks (a layer whose start the host
/// does not keep costs no compression while it streams).
pub fn stream<Q: Write, A: BufRead + Send>(
    data: &mut dyn Read,
    spool: &mut File,
    cuts: &mut CutWriter<BufWriter<File>>,
    recipe: File,
    to_host: &mut Q,
    from_host: &mut A,
) -> io::Result<Streamed> {
    let layer = spool.try_clone()?;
    let (split, asked_broken, written) = thread::scope(|scope| {
        let (batches, received) = mpsc::sync_channel(IN_FLIGHT);
        let writer = scope.spawn(|| write_as_answered(received, from_host, &layer, recipe));
        let mut asker = Asker {
            to_host,
            batches,
            batch: Batch::default(),
            asked: HashSet::new(),
            offset: 0,
            broken: false,
        };
        let split = chunks::split(
            Tee {
                data: &mut *data,
                copy: &mut *spool,
            },
            |piece| {
                let cut = Cut::of(&piece)?;
                cuts.push(cut)?;
                asker.add(cut);
                Ok(())
            },
        );
        asker.flush();
        let broken = asker.broken;
        drop(asker);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (split, broken, written)
    });
    let Written { kept, ops, broken } = written?;
    Ok(Streamed {
        split,
        kept,
        ops,
        broken: broken || asked_broken,
    })
}

/// A piece's cut, and where it begins in the layer.
struct Placed {
    offset: u64,
    cut: Cut,
}

/// A run of the layer's pieces, and the keys first seen among them, which its query asks.
#[derive(Default)]
struct Batch {
    pieces: Vec<Placed>,
    asked: Vec<Key>,
}

/// The pass's side: batches the pieces, asks each batch's query and hands the batch on.
struct Asker<'q, Q: Write> {
    to_host: &'q mut Q,
    batches: SyncSender<Batch>,
    batch: Batch,
    /// Every key asked for this layer: each is asked once, in the batch where it first is.
    asked: HashSet<Key>,
    offset: u64,
    broken: bool,
}

impl<Q: Write> Asker<'_, Q> {
    fn add(&mut self, cut: Cut) {
        if let Some(key) = cut.key.filter(|key| self.asked.insert(*key)) {
            self.batch.asked.push(key);
        }
        self.batch.pieces.push(Placed {
            offset: self.offset,
            cut,
        });
        self.offset += u64::from(cut.len);
        if self.batch.asked.len() >= BATCH_KEYS || self.batch.pieces.len() >= BATCH_PIECES {
            self.flush();
        }
    }

    /// Asks the batch's query, then hands the batch to the writer, which reads the answers in
    /// the order the queries went. Once broken, nothing more is asked or handed on.
    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if self.broken || batch.pieces.is_empty() {
            return;
        }
        let asked = batch.asked.is_empty()
            || protocol::write_query(&mut *self.to_host, &batch.asked).is_ok();
        self.broken = !asked || self.batches.send(batch).is_err();
    }
}

/// The writer's side when the batches end.
struct Written {
    kept: Kept,
    ops: Option<(File, Totals)>,
    broken: bool,
}

/// Reads each batch's answer and writes its operations, reading the bytes the host lacks back
/// from the spooled layer (written before their batch was handed on).
fn write_as_answered<A: BufRead>(
    batches: Receiver<Batch>,
    from_host: &mut A,
    layer: &File,
    recipe: File,
) -> io::Result<Written> {
    let mut kept = Kept::default();
    let mut recipe = Some(recipe);
    let mut ops: Option<Ops<BufWriter<File>>> = None;
    let mut layer = Window::new(layer);
    for (index, batch) in batches.into_iter().enumerate() {
        if !batch.asked.is_empty() {
            let Ok((bitmap, follows)) = protocol::read_have(from_host, batch.asked.len()) else {
                return Ok(Written {
                    kept,
                    ops: None,
                    broken: true,
                });
            };
            kept.add_answers(&batch.asked, &bitmap, &follows);
        }
        let kept_here = |placed: &Placed| placed.cut.key.filter(|key| kept.keys.contains(key));
        if index == 0
            && batch
                .pieces
                .iter()
                .any(|placed| kept_here(placed).is_some())
        {
            if let Some(file) = recipe.take() {
                ops = Some(Ops::new(BufWriter::with_capacity(256 * 1024, file))?);
            }
        }
        let Some(ops) = ops.as_mut() else {
            continue;
        };
        for placed in &batch.pieces {
            match kept_here(placed) {
                Some(key) => ops.kept(key, u64::from(placed.cut.len), &kept)?,
                None => ops.lacked(layer.piece(placed)?)?,
            }
        }
    }
    let ops = match ops {
        Some(ops) => {
            let (out, totals) = ops.finish()?;
            Some((out.into_inner().map_err(|e| e.into_error())?, totals))
        }
        None => None,
    };
    Ok(Written {
        kept,
        ops,
        broken: false,
    })
}

/// The spooled layer read back a window at a time: the pieces the host lacks are small and
/// close together (a header, a chunk apart from the next), one read each would be a system
/// call apiece.
struct Window<'f> {
    file: &'f File,
    bytes: Vec<u8>,
    /// Where `bytes` begins in the layer.
    start: u64,
}

impl<'f> Window<'f> {
    fn new(file: &'f File) -> Window<'f> {
        Window {
            file,
            bytes: Vec::new(),
            start: 0,
        }
    }

    /// The piece's bytes, which the spool holds already (its batch came after them).
    fn piece(&mut self, placed: &Placed) -> io::Result<&[u8]> {
        let (offset, len) = (placed.offset, placed.cut.len as usize);
        let in_window =
            offset >= self.start && offset + len as u64 <= self.start + self.bytes.len() as u64;
        if !in_window {
            self.bytes.resize(len.max(WINDOW), 0);
            let mut filled = 0;
            while filled < len {
                match self
                    .file
                    .read_at(&mut self.bytes[filled..], offset + filled as u64)?
                {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    count => filled += count,
                }
            }
            self.bytes.truncate(filled);
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.bytes[at..at + len])
    }
}

/// Reads `data`, copying what it reads to `copy`.
pub struct Tee<'a> {
    pub data: &'a mut dyn Read,
    pub copy: &'a mut File,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.data.read(buf)?;
        self.copy.write_all(&buf[..count])?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Seek, SeekFrom};

    use crate::delta::pack::{pack_layer, Packs};
    use crate::delta::rebuild::rebuild;
    use crate::delta::recipe::{header_bytes, Format, PREFIX_LEN};
    use crate::delta::tests::{dir, layer, random};

    /// `count` small files of their own contents each (one chunk apiece), with this mtime;
    /// those whose index is in `edited` changed.
    fn files(count: usize, edited: &[usize], mtime: u64) -> Vec<u8> {
        let contents: Vec<(String, Vec<u8>)> = (0..count)
            .map(|i| {
                let seed = if edited.contains(&i) {
                    1_000_000 + i
                } else {
                    i
                };
                (format!("f{i:05}"), random(300, seed as u64))
            })
            .collect();
        let files: Vec<(&str, &[u8])> = contents
            .iter()
            .map(|(name, data)| (name.as_str(), &data[..]))
            .collect();
        layer(&files, mtime)
    }

    /// Streams `new` against a host that keeps `packs` (a thread answering the queries as the
    /// host does), or whose session is gone when `packs` is None.
    fn stream_against(new: &[u8], packs: Option<&Packs>) -> (Streamed, File) {
        let (from_client, mut to_host) = io::pipe().unwrap();
        let (from_host, to_client) = io::pipe().unwrap();
        let mut spool = tempfile::tempfile().unwrap();
        let mut cuts = CutWriter::new(BufWriter::new(tempfile::tempfile().unwrap()));
        let mut recipe = tempfile::tempfile().unwrap();
        recipe.seek(SeekFrom::Start(PREFIX_LEN as u64)).unwrap();
        let streamed = thread::scope(|scope| {
            match packs {
                Some(packs) => {
                    scope.spawn(move || {
                        let (mut from_client, mut to_client) =
                            (BufReader::new(from_client), to_client);
                        while let Some(asked) = protocol::read_query(&mut from_client).unwrap() {
                            let (kept, follows) = (packs.bitmap(&asked), packs.follows(&asked));
                            protocol::write_have(&mut to_client, asked.len(), &kept, &follows)
                                .unwrap();
                        }
                    });
                }
                None => drop((from_client, to_client)),
            }
            let mut data = new;
            let mut from_host = BufReader::new(from_host);
            let streamed = stream(
                &mut data,
                &mut spool,
                &mut cuts,
                recipe,
                &mut to_host,
                &mut from_host,
            );
            drop(to_host);
            streamed.unwrap()
        });
        (streamed, spool)
    }

    fn packs_of(old: &[u8]) -> (Packs, tempfile::TempDir) {
        let content = dir();
        pack_layer(old, content.path(), None)
            .unwrap()
            .commit()
            .unwrap();
        (Packs::open(content.path()).unwrap(), content)
    }

    #[test]
    fn the_recipe_is_written_as_the_answers_come_and_rebuilds_the_layer() {
        let (packs, _content) = packs_of(&files(3000, &[], 1));
        // Three batches of queries; every mtime new, three files edited.
        let new = files(3000, &[5, 1500, 2999], 2);
        let (streamed, mut spool) = stream_against(&new, Some(&packs));
        assert!(!streamed.broken);
        let split = streamed.split.unwrap();
        assert_eq!(split.size, new.len() as u64);
        assert_eq!(streamed.kept.keys.len(), 2997);
        let (mut recipe, totals) = streamed.ops.expect("the first batch has kept chunks");
        assert_eq!(totals.literal + totals.referenced, new.len() as u64);
        assert_eq!(totals.referenced, 2997 * 300);
        recipe
            .write_all_at(&header_bytes(Format::V2, &split), 0)
            .unwrap();
        recipe.rewind().unwrap();
        let mut rebuilt = Vec::new();
        let declared = rebuild(BufReader::new(recipe), &packs, &mut rebuilt, u64::MAX).unwrap();
        assert_eq!((declared.diff_id, rebuilt), (split.diff_id, new.clone()));
        // The layer is spooled whole, as the save gave it.
        let mut spooled = Vec::new();
        spool.rewind().unwrap();
        spool.read_to_end(&mut spooled).unwrap();
        assert_eq!(spooled, new);
    }

    #[test]
    fn a_layer_whose_first_batch_the_host_lacks_is_written_after_the_pass() {
        let (packs, _content) = packs_of(&files(3000, &[], 1));
        let new = files(3000, &(0..1200).collect::<Vec<_>>(), 2);
        let (streamed, _) = stream_against(&new, Some(&packs));
        assert!(!streamed.broken && streamed.ops.is_none());
        assert_eq!(streamed.kept.keys.len(), 1800);
    }

    #[test]
    fn a_session_gone_breaks_the_queries_and_the_layer_is_still_spooled() {
        let new = files(3000, &[], 2);
        let (streamed, spool) = stream_against(&new, None);
        assert!(streamed.broken && streamed.ops.is_none());
        assert_eq!(streamed.split.unwrap().size, new.len() as u64);
        assert_eq!(spool.metadata().unwrap().len(), new.len() as u64);
    }
}

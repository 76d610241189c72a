//! Changed layers sent as recipes (docs/delta.md): a layer the host lacks is spooled while its
//! chunks' keys are taken, the host is asked which of them it keeps for the app, and the layer
//! goes as a recipe of those and the bytes it lacks, or whole when the host keeps none of it.
//! A host that takes format 2 is asked as the layer streams, and the recipe written as its
//! answers come (`streamed`); one that takes format 1 only once the layer is read. Memory stays
//! flat: the layer, where it was cut, and its recipe wait in temp files, a chunk at a time in
//! memory.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use crate::client::layers_session::LayersSession;
use crate::client::streamed::{self, Streamed, Tee};
use crate::delta::chunks;
use crate::delta::cuts::{Cut, CutReader, CutWriter};
use crate::delta::ops;
use crate::delta::recipe::{header_bytes, Format, Kept, Totals, PREFIX_LEN};

/// Layers smaller than this go whole: a recipe would save little.
pub const MIN_LAYER: u64 = 64 * 1024;

/// What went as recipes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecipeTotals {
    pub layers: usize,
    /// The layers' bytes sent in the recipes.
    pub literal: u64,
    /// The layers' bytes the recipes refer to.
    pub referenced: u64,
}

/// The form a layer goes in, each in a temp file, rewound.
pub enum LayerForm {
    Whole(File),
    Recipe { recipe: File, len: u64 },
}

/// The chunk queries of one push.
pub struct Recipes {
    session: LayersSession,
    format: Format,
    /// A query failed: the rest of the layers go whole.
    broken: bool,
    totals: RecipeTotals,
}

impl Recipes {
    /// Recipes in `format`, the one the host takes.
    pub fn new(session: LayersSession, format: Format) -> Recipes {
        Recipes {
            session,
            format,
            broken: false,
            totals: RecipeTotals::default(),
        }
    }

    /// Ends the queries; what went as recipes.
    pub fn finish(self) -> RecipeTotals {
        let _ = self.session.finish();
        self.totals
    }

    /// The uncompressed layer tar `data`, as it is to be sent: a recipe when the host keeps
    /// some of its chunks and the recipe is the smaller.
    pub fn prepare(
        &mut self,
        data: &mut dyn Read,
        temp: impl Fn() -> io::Result<File>,
    ) -> io::Result<LayerForm> {
        let mut spool = temp()?;
        if self.broken {
            io::copy(data, &mut spool)?;
            spool.rewind()?;
            return Ok(LayerForm::Whole(spool));
        }
        let mut cuts = CutWriter::new(BufWriter::new(temp()?));
        let (split, kept, streamed_ops) = match self.format {
            Format::V1 => {
                let keys = chunks::keys(
                    Tee {
                        data: &mut *data,
                        copy: &mut spool,
                    },
                    |piece| cuts.push(Cut::of(piece)?),
                );
                match keys {
                    Ok((keys, split)) if !keys.is_empty() => match self.session.ask(&keys) {
                        Ok((bitmap, follows)) => (
                            Ok(split),
                            Kept::from_answers(&keys, &bitmap, &follows),
                            None,
                        ),
                        Err(_) => {
                            self.broken = true;
                            (Ok(split), Kept::default(), None)
                        }
                    },
                    other => (other.map(|(_, split)| split), Kept::default(), None),
                }
            }
            Format::V2 => {
                let mut recipe = temp()?;
                // The header goes in this hole once the layer is read.
                recipe.seek(SeekFrom::Start(PREFIX_LEN as u64))?;
                let (to_host, from_host) = self.session.halves();
                let Streamed {
                    split,
                    kept,
                    ops,
                    broken,
                } = streamed::stream(data, &mut spool, &mut cuts, recipe, to_host, from_host)?;
                self.broken |= broken;
                (split, kept, ops.filter(|_| !broken))
            }
        };
        let split = match split {
            Ok(split) => split,
            // Not a tar: it goes as it is.
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                io::copy(data, &mut spool)?;
                spool.rewind()?;
                return Ok(LayerForm::Whole(spool));
            }
            Err(err) => return Err(err),
        };
        spool.rewind()?;
        if kept.keys.is_empty() {
            return Ok(LayerForm::Whole(spool));
        }
        let (mut recipe, totals) = match streamed_ops {
            Some((recipe, totals)) => {
                recipe.write_all_at(&header_bytes(Format::V2, &split), 0)?;
                (recipe, totals)
            }
            None => {
                let mut cuts = cuts.into_inner().into_inner().map_err(|e| e.into_error())?;
                cuts.rewind()?;
                let mut written = temp()?;
                let totals = ops::write(
                    &mut spool,
                    CutReader::new(BufReader::with_capacity(256 * 1024, cuts)),
                    &split,
                    &kept,
                    self.format,
                    &mut written,
                )?;
                spool.rewind()?;
                (written, totals)
            }
        };
        let len = recipe.seek(SeekFrom::End(0))?;
        if totals.referenced == 0 || len >= split.size {
            return Ok(LayerForm::Whole(spool));
        }
        recipe.rewind()?;
        self.count(&totals);
        Ok(LayerForm::Recipe { recipe, len })
    }

    fn count(&mut self, totals: &Totals) {
        self.totals.layers += 1;
        self.totals.literal += totals.literal;
        self.totals.referenced += totals.referenced;
    }
}

//! Changed layers sent as recipes (docs/delta.md): a layer the host lacks is spooled while its
//! chunks' keys are taken, the host is asked which of them it keeps for the app, and the layer
//! goes as a recipe of those and the bytes it lacks, or whole when the host keeps none of it.
//! Memory stays flat: the layer, where it was cut, and its recipe wait in temp files, a chunk at
//! a time in memory.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use crate::client::layers_session::LayersSession;
use crate::delta::chunks;
use crate::delta::cuts::{CutReader, CutWriter};
use crate::delta::recipe::{self, Kept};

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
    /// A query failed: the rest of the layers go whole.
    broken: bool,
    totals: RecipeTotals,
}

impl Recipes {
    pub fn new(session: LayersSession) -> Recipes {
        Recipes {
            session,
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
        let mut cuts = CutWriter::new(BufWriter::new(temp()?));
        let keys = chunks::keys(
            Tee {
                data: &mut *data,
                copy: &mut spool,
            },
            |piece| cuts.push(piece),
        );
        let (keys, split) = match keys {
            Ok(found) => found,
            // Not a tar: it goes as it is.
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                io::copy(data, &mut spool)?;
                spool.rewind()?;
                return Ok(LayerForm::Whole(spool));
            }
            Err(err) => return Err(err),
        };
        spool.rewind()?;
        if self.broken || keys.is_empty() {
            return Ok(LayerForm::Whole(spool));
        }
        let Ok((bitmap, follows)) = self.session.ask(&keys) else {
            self.broken = true;
            return Ok(LayerForm::Whole(spool));
        };
        let kept = Kept::from_answers(&keys, &bitmap, &follows);
        if kept.keys.is_empty() {
            return Ok(LayerForm::Whole(spool));
        }
        let mut cuts = cuts.into_inner().into_inner().map_err(|e| e.into_error())?;
        cuts.rewind()?;
        let mut written = temp()?;
        let totals = recipe::write(
            &mut spool,
            CutReader::new(BufReader::with_capacity(256 * 1024, cuts)),
            &split,
            &kept,
            &mut written,
        )?;
        let len = written.stream_position()?;
        spool.rewind()?;
        if totals.referenced == 0 || len >= split.size {
            return Ok(LayerForm::Whole(spool));
        }
        written.rewind()?;
        self.totals.layers += 1;
        self.totals.literal += totals.literal;
        self.totals.referenced += totals.referenced;
        Ok(LayerForm::Recipe {
            recipe: written,
            len,
        })
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

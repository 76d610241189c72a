//! A writer that writes on a thread of its own. `image:load` decompresses and checks the archive
//! on one core while this thread copies it into `docker image load`'s pipe on the other, so the
//! plugin keeps up with the engine. Memory is bounded: at most `DEPTH` chunks are in flight.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

const CHUNK: usize = 1 << 20;
const DEPTH: usize = 4;

#[derive(Debug)]
pub struct Relay {
    chunk: Vec<u8>,
    to_writer: Option<SyncSender<Vec<u8>>>,
    /// Chunks the writer thread has emptied, to be filled again without allocating.
    recycled: Receiver<Vec<u8>>,
    writer: Option<JoinHandle<io::Result<()>>>,
}

impl Relay {
    pub fn new<W: Write + Send + 'static>(mut inner: W) -> Relay {
        let (to_writer, from_relay) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (give_back, recycled) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 1);
        let writer = std::thread::spawn(move || -> io::Result<()> {
            for mut chunk in from_relay {
                inner.write_all(&chunk)?;
                chunk.clear();
                let _ = give_back.try_send(chunk);
            }
            inner.flush()
        });
        Relay {
            chunk: Vec::with_capacity(CHUNK),
            to_writer: Some(to_writer),
            recycled,
            writer: Some(writer),
        }
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.chunk, next);
        let sent = self.to_writer.as_ref().map(|sender| sender.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            // The writer thread ended: its own error says why.
            _ => Err(self.join().err().unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::BrokenPipe, "the relay thread stopped")
            })),
        }
    }

    fn join(&mut self) -> io::Result<()> {
        self.to_writer = None;
        match self.writer.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the relay thread panicked"))),
            None => Ok(()),
        }
    }

    /// Writes what is left, closes the inner writer and reports the first write error.
    pub fn finish(&mut self) -> io::Result<()> {
        self.send_chunk()?;
        self.join()
    }
}

impl Write for Relay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.chunk.len();
        let taken = room.min(buf.len());
        self.chunk.extend_from_slice(&buf[..taken]);
        if self.chunk.len() == CHUNK {
            self.send_chunk()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_chunk()
    }
}

impl Drop for Relay {
    /// Dropping without `finish` abandons what is queued: the caller has killed the reader.
    fn drop(&mut self) {
        let _ = self.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn everything_written_arrives_in_order() {
        let sink = Shared::default();
        let mut relay = Relay::new(sink.clone());
        let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(70_000) {
            relay.write_all(piece).unwrap();
        }
        relay.finish().unwrap();
        assert_eq!(*sink.0.lock().unwrap(), data);
    }

    struct Failing;

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_inner_error_reaches_the_caller() {
        let mut relay = Relay::new(Failing);
        let big = vec![0u8; (DEPTH + 3) * CHUNK];
        let err = match relay.write_all(&big) {
            Err(err) => err,
            Ok(()) => relay.finish().unwrap_err(),
        };
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}

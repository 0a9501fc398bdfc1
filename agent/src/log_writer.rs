//! The agent's log writer: standard error, batched on the proxy's worker threads.
//!
//! Every proxied request writes one audit record. Written straight to standard error that is
//! one `write(2)` per request on the request's own thread, before the worker can go back
//! to its sockets. A thread that called [`batch_this_thread`] (each proxy worker) instead
//! appends its lines to a buffer of its own and writes them with one call when:
//! - the thread is about to wait for I/O ([`flush_this_thread`], the worker runtime's park
//!   hook), so at low load a record is written right after its response, and at high load
//!   the records of many requests go out together;
//! - the buffer holds [`FLUSH_BYTES`], or its oldest line is [`FLUSH_AGE`] old;
//! - the thread ends (the buffer's `Drop`, which also runs when a panic unwinds the thread).
//!
//! Lines are never dropped to save memory or time: a full buffer is written, not discarded.
//! A write that fails loses its lines, as an unbatched write to a broken standard error
//! does (the buffer is not kept, so it cannot grow without bound).
//! Lines from one thread keep their order; lines from different threads were never
//! ordered.

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// A batch is written once it holds this many bytes.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// ... or once its oldest line is this old.
pub const FLUSH_AGE: Duration = Duration::from_millis(50);

/// The lines a batching thread has not written yet.
#[derive(Debug)]
struct Batch {
    bytes: Vec<u8>,
    /// When the oldest line in `bytes` was added.
    since: Option<Instant>,
}

impl Batch {
    fn add(&mut self, line: &[u8]) {
        if self.bytes.is_empty() {
            self.since = Some(Instant::now());
        }
        self.bytes.extend_from_slice(line);
        let old = self.since.is_some_and(|t| t.elapsed() >= FLUSH_AGE);
        if self.bytes.len() >= FLUSH_BYTES || old {
            self.write_out();
        }
    }

    /// Writes everything buffered to standard error.
    fn write_out(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        // Nowhere to report a failure to: standard error is what failed.
        let _ = write_stderr(&self.bytes);
        self.bytes.clear();
        self.since = None;
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.write_out();
    }
}

/// Standard error (in unit tests: a buffer the tests read).
#[cfg(not(test))]
fn write_stderr(bytes: &[u8]) -> io::Result<()> {
    io::stderr().lock().write_all(bytes)
}

#[cfg(test)]
fn write_stderr(bytes: &[u8]) -> io::Result<()> {
    tests::CAPTURED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend_from_slice(bytes);
    Ok(())
}

thread_local! {
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// From now on, lines logged on this thread are batched (see the module docs). Call
/// [`flush_this_thread`] before the thread waits for anything.
pub fn batch_this_thread() {
    BATCH.with(|batch| {
        let mut batch = batch.borrow_mut();
        if batch.is_none() {
            *batch = Some(Batch {
                bytes: Vec::with_capacity(FLUSH_BYTES),
                since: None,
            });
        }
    });
}

/// Writes the lines this thread has batched (nothing on a thread that does not batch).
pub fn flush_this_thread() {
    // `try_with`: during thread teardown the batch may already be gone (its Drop wrote it).
    let _ = BATCH.try_with(|batch| {
        if let Ok(mut batch) = batch.try_borrow_mut()
            && let Some(batch) = batch.as_mut()
        {
            batch.write_out();
        }
    });
}

/// The [`MakeWriter`] the agent's subscriber uses: standard error, batched on threads that
/// called [`batch_this_thread`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

/// One event's writer.
#[derive(Debug)]
pub struct StderrWriter;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = StderrWriter;

    fn make_writer(&'a self) -> Self::Writer {
        StderrWriter
    }
}

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let batched = BATCH
            .try_with(|batch| match batch.try_borrow_mut() {
                Ok(mut batch) => match batch.as_mut() {
                    Some(batch) => {
                        batch.add(buf);
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            })
            .unwrap_or(false);
        if !batched {
            write_stderr(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        flush_this_thread();
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Everything "written to standard error" by the tests (they run in parallel: each
    /// looks for its own lines).
    pub(super) static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    fn captured(line: &str) -> bool {
        let all = CAPTURED.lock().unwrap();
        String::from_utf8_lossy(&all).contains(line)
    }

    fn pending() -> usize {
        BATCH.with(|b| b.borrow().as_ref().map_or(0, |b| b.bytes.len()))
    }

    #[test]
    fn unbatched_threads_write_through() {
        std::thread::spawn(|| {
            let mut w = Stderr.make_writer();
            assert_eq!(w.write(b"log_writer test: unbatched line\n").unwrap(), 32);
            assert_eq!(pending(), 0);
            assert!(captured("unbatched line\n"));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn batched_lines_wait_for_a_flush_then_go_out_together() {
        std::thread::spawn(|| {
            batch_this_thread();
            let mut w = Stderr.make_writer();
            w.write_all(b"log_writer test: one\n").unwrap();
            w.write_all(b"log_writer test: two\n").unwrap();
            assert_eq!(pending(), 42);
            assert!(!captured("log_writer test: one\n"));
            flush_this_thread();
            assert_eq!(pending(), 0);
            assert!(captured("log_writer test: one\nlog_writer test: two\n"));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_full_or_old_batch_is_written_without_a_flush() {
        std::thread::spawn(|| {
            batch_this_thread();
            let mut w = Stderr.make_writer();
            let line = [b'x'; 1023];
            for _ in 0..(FLUSH_BYTES / 1024) - 1 {
                w.write_all(&line).unwrap();
                w.write_all(b"\n").unwrap();
            }
            assert_eq!(pending(), FLUSH_BYTES - 1024);
            w.write_all(&line).unwrap();
            w.write_all(b"\n").unwrap();
            assert_eq!(pending(), 0, "a full batch is written at once");
            w.write_all(b"log_writer test: old\n").unwrap();
            assert_eq!(pending(), 21);
            std::thread::sleep(FLUSH_AGE);
            w.write_all(b"log_writer test: newer\n").unwrap();
            assert_eq!(
                pending(),
                0,
                "a batch whose oldest line is FLUSH_AGE old is written"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_that_ends_writes_its_batch() {
        let left = std::thread::spawn(|| {
            batch_this_thread();
            Stderr
                .make_writer()
                .write_all(b"log_writer test: at exit\n")
                .unwrap();
            pending()
        })
        .join()
        .unwrap();
        assert_eq!(left, 25, "still pending when the thread ended");
        assert!(captured("log_writer test: at exit\n"));
    }

    #[test]
    fn a_panicking_thread_writes_its_batch() {
        let result = std::thread::spawn(|| {
            batch_this_thread();
            Stderr
                .make_writer()
                .write_all(b"log_writer test: before the panic\n")
                .unwrap();
            panic!("log_writer test panic");
        })
        .join();
        assert!(result.is_err());
        assert!(captured("log_writer test: before the panic\n"));
    }
}

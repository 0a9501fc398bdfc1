use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

use super::*;

/// A log writer for tests: the lines written through it.
#[derive(Clone, Default)]
pub(crate) struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[derive(Debug)]
struct Outer(Inner);

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outer failed")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[derive(Debug)]
struct Inner;

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("inner cause")
    }
}

impl std::error::Error for Inner {}

/// Every kind of field, in both orders of fast and slow paths.
fn events() {
    let error = Outer(Inner);
    tracing::info!(
        target: "t",
        user = "alice",
        groups = "k8s-admins,dev",
        path = "/api/v1/namespaces/default/pods?watch=1&labelSelector=a%3Db",
        status = 200u16,
        duration_ms = 0u64,
        upgraded = false,
        "proxied request"
    );
    tracing::info!(
        target: "t",
        empty = "",
        quote = "say \"hi\"",
        backslash = "a\\b",
        newline = "two\nlines",
        tab = "a\tb",
        escape = "\u{1b}[31mred",
        unicode = "zoë ✓",
        max = u64::MAX,
        negative = -42i64,
        positive = 42i64,
        yes = true,
        display = %"shown as is",
        debug = ?vec!["a", "b"],
        error = &error as &(dyn std::error::Error + 'static),
        r#type = "raw name",
        none = Option::<&str>::None,
        some = Some("x"),
        "message with \"quotes\" and\nnewline {}",
        7
    );
    tracing::warn!(target: "t", first = 1u64, second = "b");
    tracing::error!(target: "t", "message only");
    tracing::info!(target: "t", only = "field");
    // The `log.` fields of a `log` record are left out, and leave no space behind.
    tracing::event!(target: "t", tracing::Level::INFO, log.module_path = "dep", after = 1u64, log.line = 3u64, end = "e");
    tracing::info!(target: "t", message = "a string message", after = 3u64);
    let span = tracing::info_span!("request", sid = "sess-1", n = 2u64, what = %"x y");
    let _in = span.enter();
    tracing::info!(target: "t", inside = "span");
}

/// The lines [`events`] writes with `fields` and ANSI colours on or off.
fn lines<N>(fields: N, ansi: bool) -> String
where
    N: for<'w> FormatFields<'w> + Send + Sync + 'static,
{
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .without_time()
        .with_ansi(ansi)
        .fmt_fields(fields)
        .with_writer(buffer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, events);
    buffer.text()
}

/// What `emit` logs in the agent's text format (main.rs, without colours).
pub(crate) fn agent_text(emit: impl FnOnce()) -> String {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .fmt_fields(Fields)
        .with_writer(buffer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    buffer.text()
}

#[test]
fn lines_are_those_of_the_default_formatter() {
    let ours = lines(Fields, false);
    let default = lines(DefaultFields::new(), false);
    assert_eq!(ours, default);
    // The events were written, each on its own line, and the fast path's fields are there.
    assert_eq!(ours.lines().count(), 9, "{ours}");
    assert!(
        ours.contains(
            r#"proxied request user="alice" groups="k8s-admins,dev" path="/api/v1/namespaces/default/pods?watch=1&labelSelector=a%3Db" status=200 duration_ms=0 upgraded=false"#
        ),
        "{ours}"
    );
    assert!(
        ours.contains(r#"max=18446744073709551615 negative=-42 positive=42 yes=true"#),
        "{ours}"
    );
    assert!(ours.contains(r#"newline="two\nlines""#), "{ours}");
}

#[test]
fn coloured_lines_are_those_of_the_default_formatter() {
    let ours = lines(Fields, true);
    assert_eq!(ours, lines(DefaultFields::new(), true));
    assert!(ours.contains('\u{1b}'), "colours were on: {ours}");
}

#[test]
fn decimal_writes_every_digit() {
    let mut buf = [0; 20];
    for n in [0, 7, 10, 99, 100, 4_294_967_296, u64::MAX] {
        assert_eq!(decimal(n, &mut buf), n.to_string());
    }
}

#[test]
fn only_printable_ascii_without_quote_or_backslash_is_written_as_is() {
    for s in ["", "alice", "a b", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}"] {
        assert!(debug_is_quoted(s), "{s:?}");
        assert_eq!(format!("{s:?}"), format!("\"{s}\""));
    }
    for s in ["\"", "\\", "\n", "\t", "\u{7f}", "\u{1b}", "é", "✓"] {
        assert!(!debug_is_quoted(s), "{s:?}");
    }
}

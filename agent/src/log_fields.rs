//! The agent's log field formatter: the same text as `tracing-subscriber`'s default
//! ([`DefaultFields`]), written without `core::fmt` for the common field types.
//!
//! Every proxied request writes an audit record of ten fields. Formatted by
//! [`DefaultFields`], each field goes through `write!` and a string field through `Debug`,
//! which escapes it one `char` at a time: ~11,000 instructions per record under callgrind,
//! more than the proxy's own decisions about the request (docs/benchmarks.md). This
//! formatter writes a field straight to the line when the result is byte for byte what
//! [`DefaultFields`] would write:
//! - a string of printable ASCII other than `"` and `\` (whose `Debug` is itself in quotes),
//! - an integer or a boolean (whose `Debug` is its `Display`),
//!
//! and hands every other field (the message, `Debug` and `Display` values, errors, strings
//! that need escaping, `r#` names) and every line with ANSI colours to [`DefaultFields`]'
//! own visitor. So the output does not depend on which path a field took.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};

/// [`FormatFields`] with [`DefaultFields`]' output and a fast path (see the module).
#[derive(Debug, Default, Clone, Copy)]
pub struct Fields;

impl<'writer> FormatFields<'writer> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            // Names in italics, `=` dimmed: the default visitor's business.
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = Visitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes one event's (or span's) fields.
struct Visitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet: no space before the next field.
    is_empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Whether `name` is written as it is (`r#` names lose their prefix, `log.` fields are
    /// skipped: the default visitor knows how).
    fn plain_name(name: &str) -> bool {
        name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
    }

    /// Writes ` name=` (no space before the first field) and `value`, in double quotes if
    /// `quoted`.
    fn write_field(&mut self, field: &Field, value: &str, quoted: bool) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.is_empty { "" } else { " " };
        let quote = if quoted { "\"" } else { "" };
        self.is_empty = false;
        self.result = (|| {
            self.writer.write_str(sep)?;
            self.writer.write_str(field.name())?;
            self.writer.write_char('=')?;
            self.writer.write_str(quote)?;
            self.writer.write_str(value)?;
            self.writer.write_str(quote)
        })();
    }

    /// The field as the default visitor writes it, with the spacing so far.
    fn by_default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        // It writes nothing for the `log.` fields of a `log` record (already in the line).
        self.is_empty &= field.name().starts_with("log.");
    }
}

/// Whether `Debug` of `s` is `s` in double quotes: printable ASCII without `"` and `\`.
fn debug_is_quoted(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// `n` in decimal, into the end of `buf`; returns the digits.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        // `n % 10` is a single digit.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !Self::plain_name(field.name()) || !debug_is_quoted(value) {
            return self.by_default(field, |v| v.record_str(field, value));
        }
        self.write_field(field, value, true);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !Self::plain_name(field.name()) {
            return self.by_default(field, |v| v.record_u64(field, value));
        }
        let mut buf = [0; 20];
        self.write_field(field, decimal(value, &mut buf), false);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !Self::plain_name(field.name()) || value < 0 {
            return self.by_default(field, |v| v.record_i64(field, value));
        }
        let mut buf = [0; 20];
        self.write_field(field, decimal(value.unsigned_abs(), &mut buf), false);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !Self::plain_name(field.name()) {
            return self.by_default(field, |v| v.record_bool(field, value));
        }
        self.write_field(field, if value { "true" } else { "false" }, false);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.by_default(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.by_default(field, |v| v.record_debug(field, value));
    }
}

#[cfg(test)]
pub(crate) mod tests;

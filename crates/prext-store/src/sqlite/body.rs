//! How report bodies are stored in SQLite (`objects.body`, `changes.body`).
//!
//! Since schema version 12 a body is stored as a BLOB: one format byte, then the body in that
//! format. The only format is [`LZ4`]: an LZ4 block (lz4_flex's `compress_prepend_size`: the
//! body's length as a little-endian `u32`, then the block). A body too small for compression
//! to pay is stored as it was before, as TEXT holding the JSON; so are the bodies written by
//! earlier versions, which are read as they are. A format byte this build does not know is a
//! storage error, never a guess.
//!
//! Bodies are compressed on the writer thread once stamped with their revision, and
//! decompressed where they are read: point reads and lists (`reader.rs`), the history of
//! watches (`reader.rs`), a delete's last state (`ops.rs`) and the findings indexer
//! (`indexer.rs`). SQL never looks inside a body (labels and result columns have their own),
//! and copies between `objects` and `changes` move the stored value as it is.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// The format byte of an LZ4-compressed body.
pub(crate) const LZ4: u8 = 1;

/// Bodies shorter than this stay TEXT: their compressed form would save a few bytes at most.
pub(crate) const MIN_COMPRESSED: usize = 128;

/// Largest body a stored length may announce (a corrupt length must not allocate gigabytes):
/// far above what the server accepts in one request.
const MAX_BODY: usize = 1 << 30;

/// A body as it is stored: TEXT or a compressed BLOB.
pub(crate) enum Encoded<'a> {
    Text(&'a str),
    Blob(Vec<u8>),
}

/// The stored form of `json`: compressed, unless that does not make it smaller.
pub(crate) fn encode(json: &str) -> Encoded<'_> {
    if json.len() < MIN_COMPRESSED || u32::try_from(json.len()).is_err() {
        return Encoded::Text(json);
    }
    let mut blob = Vec::with_capacity(1 + 4 + lz4_flex::block::get_maximum_output_size(json.len()));
    blob.push(LZ4);
    blob.extend_from_slice(&lz4_flex::block::compress_prepend_size(json.as_bytes()));
    if blob.len() >= json.len() {
        return Encoded::Text(json);
    }
    Encoded::Blob(blob)
}

impl ToSql for Encoded<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Encoded::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Encoded::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Why a stored body cannot be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("unknown stored body format {0} (written by a newer prext?)")]
    UnknownFormat(u8),
    #[error("empty stored body")]
    Empty,
    #[error("stored body announces {0} bytes, more than any body")]
    TooLarge(usize),
    #[error("corrupt compressed body: {0}")]
    Corrupt(#[from] lz4_flex::block::DecompressError),
    #[error("stored body is not UTF-8: {0}")]
    NotUtf8(#[from] std::string::FromUtf8Error),
}

/// The JSON bytes of a stored BLOB body.
pub(crate) fn decode(blob: &[u8]) -> Result<Vec<u8>, BodyError> {
    let (&format, rest) = blob.split_first().ok_or(BodyError::Empty)?;
    if format != LZ4 {
        return Err(BodyError::UnknownFormat(format));
    }
    let (size, block) = rest.split_at_checked(4).ok_or(BodyError::Empty)?;
    let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
    if size > MAX_BODY {
        return Err(BodyError::TooLarge(size));
    }
    Ok(lz4_flex::block::decompress(block, size)?)
}

/// A body read from SQLite, decompressed: the JSON bytes (see the module doc).
pub(crate) struct Body(pub(crate) Vec<u8>);

impl Body {
    /// The body as a string (JSON is UTF-8; a stored TEXT already was).
    pub(crate) fn into_string(self) -> Result<String, BodyError> {
        Ok(String::from_utf8(self.0)?)
    }
}

impl FromSql for Body {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            // Written before schema version 12, or too small to compress.
            ValueRef::Text(t) => Ok(Body(t.to_vec())),
            ValueRef::Blob(b) => decode(b).map(Body).map_err(|e| FromSqlError::Other(Box::new(e))),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

/// A body that may be NULL (a change row whose body is the object's): `Option<Body>` reads
/// it; this turns it into the string [`crate::rows::ChangeRow`] holds.
pub(crate) fn optional_string(body: Option<Body>) -> Result<Option<String>, BodyError> {
    body.map(Body::into_string).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(json: &str) -> Vec<u8> {
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        conn.execute("CREATE TABLE t (body TEXT)", []).expect("table");
        conn.execute("INSERT INTO t VALUES (?1)", [encode(json)])
            .expect("insert");
        conn.query_row("SELECT body FROM t", [], |r| r.get::<_, Body>(0))
            .expect("read")
            .0
    }

    #[test]
    fn large_bodies_are_stored_compressed_and_read_back_whole() {
        let json = format!(
            r#"{{"results": [{}]}}"#,
            vec![r#"{"policy": "p", "result": "pass"}"#; 100].join(",")
        );
        let Encoded::Blob(blob) = encode(&json) else {
            panic!("a repetitive body of {} bytes is stored compressed", json.len())
        };
        assert_eq!(blob[0], LZ4);
        assert!(
            blob.len() < json.len() / 4,
            "{} of {} bytes",
            blob.len(),
            json.len()
        );
        assert_eq!(round_trip(&json), json.as_bytes());
    }

    #[test]
    fn small_bodies_and_text_rows_of_earlier_versions_are_read_as_they_are() {
        let small = r#"{"metadata": {"name": "a"}}"#;
        assert!(matches!(encode(small), Encoded::Text(_)));
        assert_eq!(round_trip(small), small.as_bytes());
        // A row written by schema version 11 or earlier: TEXT, whatever its size.
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        let big = format!(r#"{{"x": "{}"}}"#, "y".repeat(4096));
        let body: Body = conn.query_row("SELECT ?1", [&big], |r| r.get(0)).expect("read");
        assert_eq!(body.into_string().expect("utf-8"), big);
    }

    #[test]
    fn unknown_formats_and_corrupt_blobs_are_errors() {
        assert!(matches!(decode(&[9, 1, 2]), Err(BodyError::UnknownFormat(9))));
        assert!(matches!(decode(&[]), Err(BodyError::Empty)));
        assert!(matches!(decode(&[LZ4, 1]), Err(BodyError::Empty)));
        assert!(matches!(
            decode(&[LZ4, 0xff, 0xff, 0xff, 0xff, 0]),
            Err(BodyError::TooLarge(_))
        ));
        assert!(matches!(
            decode(&[LZ4, 100, 0, 0, 0, 0xf0]),
            Err(BodyError::Corrupt(_))
        ));
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        let err = conn
            .query_row("SELECT x'07'", [], |r| r.get::<_, Body>(0))
            .err()
            .expect("an unknown format is refused");
        assert!(err.to_string().contains("unknown stored body format 7"), "{err}");
    }
}

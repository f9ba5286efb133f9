//! PostgreSQL's binary `COPY` row format (`COPY … FROM STDIN (FORMAT BINARY)`), encoding only
//! the column types the flow ingest sends: `bigint` and `text`, either possibly NULL.
//!
//! The format (PostgreSQL's "Binary Format" of `COPY`): an 11-byte signature, a 32-bit flags
//! field (0: no OIDs) and a 32-bit header-extension length (0); then per row a 16-bit field
//! count and per field a 32-bit byte length (-1 for NULL) and the value in the type's binary
//! send format (`int8`: 8 bytes big-endian; `text`: the UTF-8 bytes, no terminator); then a
//! 16-bit -1 trailer. All integers are network byte order.

/// `PGCOPY\n\377\r\n\0`.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// An encoder of one `COPY` stream: the header on creation, rows of a fixed column count, the
/// trailer on [`CopyBinary::finish`].
#[derive(Debug)]
pub(crate) struct CopyBinary {
    buf: Vec<u8>,
    columns: i16,
    /// Fields written in the current row (checked in debug builds).
    in_row: i16,
    /// A field longer than the format's 32-bit length: the stream is refused at `finish`.
    too_long: bool,
}

impl CopyBinary {
    /// A stream of rows of `columns` fields each, with room reserved for `capacity` bytes.
    pub(crate) fn new(columns: i16, capacity: usize) -> CopyBinary {
        let mut buf = Vec::with_capacity(capacity.max(SIGNATURE.len() + 10));
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        CopyBinary {
            buf,
            columns,
            in_row: columns,
            too_long: false,
        }
    }

    /// Starts a row; its `columns` fields follow.
    pub(crate) fn row(&mut self) -> &mut Self {
        debug_assert_eq!(self.in_row, self.columns, "previous row incomplete");
        self.buf.extend_from_slice(&self.columns.to_be_bytes());
        self.in_row = 0;
        self
    }

    fn field(&mut self) {
        debug_assert!(self.in_row < self.columns, "more fields than columns");
        self.in_row += 1;
    }

    /// A `bigint` field.
    pub(crate) fn int8(&mut self, v: i64) -> &mut Self {
        self.field();
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A `text` field.
    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        self.text_with(|b| b.push_str(s))
    }

    /// An address as a `text` field, written in place as its `Display` (`flows::write_addr`).
    pub(crate) fn text_addr(&mut self, a: &std::net::IpAddr) -> &mut Self {
        self.text_with(|b| crate::flows::write_addr(b, a))
    }

    /// An optional address as a `text` field.
    pub(crate) fn opt_text_addr(&mut self, a: Option<&std::net::IpAddr>) -> &mut Self {
        match a {
            Some(a) => self.text_addr(a),
            None => self.null(),
        }
    }

    fn text_with(&mut self, f: impl FnOnce(&mut Utf8Buf<'_>)) -> &mut Self {
        self.field();
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        f(&mut Utf8Buf(&mut self.buf));
        let len = i32::try_from(self.buf.len() - at - 4).unwrap_or_else(|_| {
            self.too_long = true;
            0
        });
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self
    }

    /// A NULL field.
    pub(crate) fn null(&mut self) -> &mut Self {
        self.field();
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    /// An optional `bigint` field.
    pub(crate) fn opt_int8(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    /// The bytes encoded so far (whole rows: call between rows), leaving the encoder empty to
    /// go on; an error if a field did not fit the format.
    pub(crate) fn take(&mut self) -> Result<Vec<u8>, sqlx::Error> {
        debug_assert_eq!(self.in_row, self.columns, "row incomplete");
        if self.too_long {
            return Err(sqlx::Error::Encode(
                "a COPY field is longer than 2 GiB".into(),
            ));
        }
        let cap = self.buf.capacity();
        Ok(std::mem::replace(&mut self.buf, Vec::with_capacity(cap)))
    }

    /// The whole stream (what [`CopyBinary::take`] left), trailer included; an error if a field did not fit the format.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, sqlx::Error> {
        debug_assert_eq!(self.in_row, self.columns, "last row incomplete");
        if self.too_long {
            return Err(sqlx::Error::Encode(
                "a COPY field is longer than 2 GiB".into(),
            ));
        }
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        Ok(self.buf)
    }
}

/// `fmt::Write` into the encoder's buffer (UTF-8 by construction: only `&str`s are written).
struct Utf8Buf<'a>(&'a mut Vec<u8>);

impl Utf8Buf<'_> {
    fn push_str(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }
}

impl std::fmt::Write for Utf8Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of the round-trip table as sent, and as read back (the address as text).
    type Sent = (i64, Option<String>, Option<i64>, Option<std::net::IpAddr>);
    type Read = (i64, Option<String>, Option<i64>, Option<String>);

    #[test]
    fn layout_is_postgresql_binary_copy() {
        let mut c = CopyBinary::new(3, 0);
        c.row().int8(-2).text("é").null();
        let b = c.finish().unwrap();
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        want.extend_from_slice(&[0, 3]); // field count
        want.extend_from_slice(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        want.extend_from_slice(&[0, 0, 0, 2, 0xc3, 0xa9]); // "é" in UTF-8
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // NULL
        want.extend_from_slice(&[0xff, 0xff]); // trailer
        assert_eq!(b, want);
    }

    #[test]
    fn addresses_are_written_in_place() {
        let mut c = CopyBinary::new(2, 0);
        let a: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        c.row().text_addr(&a).opt_text_addr(None);
        let b = c.finish().unwrap();
        let row = &b[19..];
        assert_eq!(&row[..2], &[0, 2]);
        assert_eq!(&row[2..6], &11i32.to_be_bytes());
        assert_eq!(&row[6..17], b"2001:db8::1");
        assert_eq!(&row[17..21], &(-1i32).to_be_bytes());
    }

    /// Round trip through the real server: rows copied into a temporary table come back equal
    /// (extremes, NULLs, empty and non-ASCII text). Needs `SLICELAB_TEST_PG`, as the store's
    /// other PostgreSQL tests do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trips_through_postgresql() {
        use sqlx::Connection;
        let Some(url) = std::env::var("SLICELAB_TEST_PG")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set SLICELAB_TEST_PG so the store tests run on PostgreSQL too"
            );
            eprintln!(
                "SKIPPED: set SLICELAB_TEST_PG=postgres://USER:PW@127.0.0.1/postgres to run it"
            );
            return;
        };
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        // Temporary: gone with the connection, nothing left on the server.
        sqlx::query("CREATE TEMP TABLE copy_rt (n BIGINT NOT NULL, t TEXT, o BIGINT, a TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        let rows: Vec<Sent> = vec![
            (i64::MIN, Some(String::new()), None, None),
            (
                i64::MAX,
                Some("slice_ünïcode ✓".into()),
                Some(-1),
                Some("10.0.0.1".parse().unwrap()),
            ),
            (
                0,
                None,
                Some(1 << 40),
                Some("2001:db8::ff".parse().unwrap()),
            ),
            (42, Some("x".repeat(70_000)), Some(0), None),
        ];
        let mut c = CopyBinary::new(4, 0);
        for (n, t, o, a) in &rows {
            c.row().int8(*n);
            match t {
                Some(t) => c.text(t),
                None => c.null(),
            };
            c.opt_int8(*o).opt_text_addr(a.as_ref());
        }
        let mut copy = conn
            .copy_in_raw("COPY copy_rt FROM STDIN (FORMAT BINARY)")
            .await
            .unwrap();
        copy.send(c.finish().unwrap()).await.unwrap();
        assert_eq!(copy.finish().await.unwrap(), rows.len() as u64);
        let back: Vec<Read> = sqlx::query_as("SELECT n, t, o, a FROM copy_rt ORDER BY n")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let mut want: Vec<_> = rows
            .into_iter()
            .map(|(n, t, o, a)| (n, t, o, a.map(|a| a.to_string())))
            .collect();
        want.sort_by_key(|r| r.0);
        assert_eq!(back, want);
        // A malformed stream (a row short of its fields) is refused, not half stored.
        let mut bad = CopyBinary::new(4, 0).finish().unwrap();
        bad.truncate(19);
        bad.extend_from_slice(&4i16.to_be_bytes());
        bad.extend_from_slice(&8i32.to_be_bytes());
        bad.extend_from_slice(&7i64.to_be_bytes());
        bad.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = conn
            .copy_in_raw("COPY copy_rt FROM STDIN (FORMAT BINARY)")
            .await
            .unwrap();
        copy.send(bad).await.unwrap();
        assert!(copy.finish().await.is_err());
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM copy_rt")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 4);
        conn.close().await.unwrap();
    }
}

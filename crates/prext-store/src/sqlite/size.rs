//! The size of a SQLite database as counted against `--store-quota-bytes`.
//!
//! `(page_count - freelist_count) * page_size`, read through a reader connection: the
//! logical database as of the last commit, which includes pages still only in the WAL
//! (the WAL file itself is not counted a second time; the checkpointer truncates it).
//! Free pages are left out: SQLite keeps the file's size after a delete but reuses its
//! free pages, so a delete really gives quota back, as etcd's quota counts space in use.

use rusqlite::Connection;

use super::db_error;
use crate::Result;

/// Bytes of the pages in use.
pub(crate) fn used_bytes(conn: &Connection) -> Result<u64> {
    let pragma = |name: &str| -> Result<u64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map(|v| v.max(0) as u64)
            .map_err(db_error)
    };
    let pages = pragma("page_count")?;
    let free = pragma("freelist_count")?;
    let page_size = pragma("page_size")?;
    Ok(pages.saturating_sub(free).saturating_mul(page_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_rows_give_their_pages_back() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (b BLOB)").unwrap();
        let empty = used_bytes(&conn).unwrap();
        for _ in 0..64 {
            conn.execute("INSERT INTO t VALUES (zeroblob(16384))", [])
                .unwrap();
        }
        let full = used_bytes(&conn).unwrap();
        assert!(full >= empty + 64 * 16384, "{empty} -> {full}");
        conn.execute("DELETE FROM t", []).unwrap();
        let freed = used_bytes(&conn).unwrap();
        assert!(freed < empty + 16384, "{empty} -> {full} -> {freed}");
    }
}

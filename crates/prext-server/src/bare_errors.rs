//! hyper's own answers to HTTP/1.1 request heads it cannot read, given a `Status` body.
//!
//! hyper refuses some heads before any service sees the request: a URI over 65,534 bytes
//! (hard-coded in hyper's parser and the `http` crate's `Uri`) with `414 URI Too Long`, and a
//! head over its read buffer ([`crate::head_limit::HYPER_HEAD_BYTES`]) or with more than
//! [`crate::head_limit::HYPER_MAX_FIELDS`] header fields with `431`, each with
//! an empty body, and then closes the connection. Every refusal of prext is a Kubernetes
//! `Status`, so [`StatusBodies`], wrapped around each connection's stream, recognizes exactly
//! such an automatic response when hyper writes it and writes the same status line with a
//! `Status` body instead. Nothing else is changed: the check looks at the start of a write for
//! `HTTP/1.1 414 ` or `HTTP/1.1 431 ` and requires a whole head with `content-length: 0`;
//! prext's own responses never have those codes with an empty body (its 431 carries a
//! `Status`, and it has no 414 of its own), HTTP/2 frames never start that way, and JSON or
//! YAML body bytes never contain a bare CRLF pair.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use prext_api::status::Status;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hyper's longest URI (`MAX_URI_LEN` of its HTTP/1.1 parser).
pub const HYPER_MAX_URI_BYTES: usize = 65_534;

/// A connection's stream whose writes of hyper's bare 414/431 answers carry a `Status`.
#[derive(Debug)]
pub struct StatusBodies<T> {
    inner: T,
    /// The response written instead of hyper's: its bytes, how many are written, and the
    /// length of hyper's buffer (reported as written once all of the replacement is).
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> StatusBodies<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            replacing: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

/// The response to write instead of `head`, if `head` is hyper's bare 414 or 431.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let status = if head.starts_with(b"HTTP/1.1 414 ") {
        Status::uri_too_long(HYPER_MAX_URI_BYTES)
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        Status::head_too_large(
            crate::head_limit::HYPER_HEAD_BYTES,
            crate::head_limit::HYPER_MAX_FIELDS,
        )
    } else {
        return None;
    };
    let empty = head.ends_with(b"\r\n\r\n")
        && head
            .to_ascii_lowercase()
            .windows(19)
            .any(|w| w == b"content-length: 0\r\n");
    if !empty {
        return None;
    }
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let body = serde_json::to_vec(&status).ok()?;
    tracing::debug!(
        code = status.code,
        "request head refused by the HTTP parser: answered with a Status"
    );
    let mut out = head[..line_end + 2].to_vec();
    out.extend_from_slice(
        format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    Some(out)
}

impl<T: AsyncWrite + Unpin> StatusBodies<T> {
    /// Writes `buf`, or its replacement: `Ready(Ok(buf.len()))` only once all of it is written.
    fn write_checked(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        if self.replacing.is_none() {
            self.replacing = Some((replacement(buf)?, 0, buf.len()));
        }
        let (bytes, done, reported) = self.replacing.as_mut()?;
        while *done < bytes.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]) {
                Poll::Ready(Ok(0)) => return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into()))),
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Pending => return Some(Poll::Pending),
            }
        }
        let reported = *reported;
        self.replacing = None;
        Some(Poll::Ready(Ok(reported)))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StatusBodies<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StatusBodies<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.write_checked(cx, buf) {
            Some(poll) => poll,
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // hyper queues an automatic answer's head as the first buffer of its write.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if let Some(poll) = this.write_checked(cx, first) {
                return poll;
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;

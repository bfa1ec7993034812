//! What a provider answers, made safe to keep: bodies read up to a cap, and text cleaned before it reaches the
//! database. A provider's bytes must never make an outcome write fail (PostgreSQL refuses NUL in text), because an
//! unrecorded send is sent again when its lease expires.

/// The most of a response body any adapter reads; the rest is never read (see [`read_capped`]).
pub const BODY_CAP: usize = 64 * 1024;

/// Characters of provider text kept in `ultimo_error` / `detalle` (with `…` when cut).
pub const REASON_CHARS: usize = 2000;

/// Characters of `id_proveedor` (`varchar(255)`).
pub const ID_CHARS: usize = 255;

/// A response body read up to [`BODY_CAP`] bytes. Past the cap the response is dropped unread, so that connection
/// is closed rather than reused; a body that large is already a misbehaving provider.
pub struct CappedBody {
    pub bytes: Vec<u8>,
    /// The cap was reached (or the body broke off after some bytes).
    pub truncated: bool,
}

impl CappedBody {
    /// The body as text; invalid UTF-8 becomes U+FFFD (the text is cleaned again wherever it is stored).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads `response`'s body chunk by chunk, keeping at most `cap` bytes. An error after some chunks keeps what was
/// read (a success answer must still count as sent); an error before any byte is returned.
pub async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<CappedBody, reqwest::Error> {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - bytes.len();
                if chunk.len() >= room {
                    // At the cap: stop, without waiting to learn whether more would come (a stalled provider would
                    // hold the send until its timeout). A body of exactly the cap counts as cut.
                    bytes.extend_from_slice(&chunk[..room]);
                    return Ok(CappedBody { bytes, truncated: true });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(CappedBody { bytes, truncated: false }),
            Err(e) if bytes.is_empty() => return Err(e),
            Err(_) => return Ok(CappedBody { bytes, truncated: true }),
        }
    }
}

/// [`read_capped`] with [`BODY_CAP`].
pub async fn read_body(response: reqwest::Response) -> Result<CappedBody, reqwest::Error> {
    read_capped(response, BODY_CAP).await
}

/// Provider text cleaned for the database: no NUL or other control characters (newline and tab become spaces),
/// and at most `max_chars` characters (cut at a character boundary, `…` marking the cut).
pub fn clean(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    let mut kept = 0usize;
    for ch in s.chars() {
        let ch = match ch {
            '\n' | '\t' | '\r' => ' ',
            c if c.is_control() => continue,
            c => c,
        };
        if kept == max_chars {
            // Room for the ellipsis: drop the last kept character.
            if max_chars > 0 {
                out.pop();
                out.push('…');
            }
            return out;
        }
        out.push(ch);
        kept += 1;
    }
    out
}

/// How much of a provider's answer a reason quotes.
pub const SNIPPET_CHARS: usize = 200;

/// A provider's answer quoted in a reason: one line, at most [`SNIPPET_CHARS`] characters (`…` when cut).
pub fn snippet(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "(sin cuerpo)".to_string();
    }
    let mut out: String = one_line.chars().take(SNIPPET_CHARS).collect();
    if one_line.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}

/// A provider's message id, cleaned and trimmed to `id_proveedor`'s length; `None` when nothing usable is left.
pub fn clean_id(s: &str) -> Option<String> {
    let cleaned = clean(s.trim(), ID_CHARS);
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_string())
}

/// A reason or detail for `ultimo_error` / `detalle`.
pub fn clean_reason(s: &str) -> String {
    clean(s, REASON_CHARS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn clean_strips_control_characters_and_cuts_on_characters() {
        assert_eq!(clean("SM\u{0}abc", 255), "SMabc");
        assert_eq!(clean("a\nb\tc\r\u{7}\u{1b}[31m", 255), "a b c [31m");
        assert_eq!(clean("\u{FFFD}ñandutí", 255), "\u{FFFD}ñandutí");
        // Cut at 5 characters, multi-byte ones included; the cut is marked and stays within the limit.
        assert_eq!(clean("ñññññññ", 5), "ññññ…");
        assert_eq!(clean("ñññññ", 5), "ñññññ");
        assert_eq!(clean("", 5), "");
        assert_eq!(clean_id(" \u{0}\u{0} "), None);
        assert_eq!(clean_id(" SM1 "), Some("SM1".into()));
        assert_eq!(clean_id(&"A".repeat(1000)).map(|s| s.chars().count()), Some(255));
        assert!(!clean_reason(&"\u{0}x".repeat(10_000)).contains('\u{0}'));
    }

    /// A server that answers 200 and then streams an endless body, counting the bytes it managed to write.
    async fn endless_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = written.clone();
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let mut req = [0u8; 4096];
            let _ = sock.read(&mut req).await;
            if sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n").await.is_err() {
                return;
            }
            let block = vec![b'x'; 16 * 1024];
            while sock.write_all(&block).await.is_ok() {
                w.fetch_add(block.len(), std::sync::atomic::Ordering::Relaxed);
            }
        });
        (format!("http://{addr}/"), written)
    }

    #[tokio::test]
    async fn an_endless_body_is_read_up_to_the_cap_and_no_further() {
        let (url, written) = endless_server().await;
        let response = reqwest::Client::new().get(&url).send().await.unwrap();
        let body = tokio::time::timeout(Duration::from_secs(10), read_capped(response, BODY_CAP))
            .await
            .expect("the reader stops at the cap")
            .unwrap();
        assert_eq!(body.bytes.len(), BODY_CAP);
        assert!(body.truncated);
        // The server could write only what the cap and the socket buffers took, not an unbounded stream.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = written.load(std::sync::atomic::Ordering::Relaxed);
        assert!(sent < 32 * 1024 * 1024, "server wrote {sent} bytes");
    }

    #[tokio::test]
    async fn a_short_body_is_read_whole() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_bytes(b"ok\xff\x00".to_vec()))
            .mount(&server)
            .await;
        let response = reqwest::Client::new().get(server.uri()).send().await.unwrap();
        let body = read_capped(response, BODY_CAP).await.unwrap();
        assert_eq!((body.bytes.as_slice(), body.truncated), (&b"ok\xff\x00"[..], false));
        assert_eq!(clean_reason(&body.text()), "ok\u{FFFD}");
    }
}

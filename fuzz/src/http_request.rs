//! Arbitrary request bytes into the HTTP server's parser path
//! (`ixtcp_examples::http::server::HttpServer`, httparse and the path
//! normalisation), over a scripted stream that delivers the input in
//! chunks of input-chosen sizes, says `WouldBlock` between them, and
//! takes the output in slices with `WouldBlock` now and then.
//!
//! The site is a document root in a temporary directory, with a file next
//! to it (outside the root) that holds a marker: the marker must never
//! appear in a response, whatever the path spelling. Every response must
//! start with an HTTP/1.x status line, and every target that
//! `path::resolve` accepts must stay inside the root.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ixtcp_examples::http::path::resolve;
use ixtcp_examples::http::server::{HttpCore, HttpServer, Limits};
use ixtcp_examples::http::site::{Site, SiteConfig};
use ixtcp_examples::session::{Session, Step, Tally};

use crate::Input;

const SECRET: &[u8] = b"IXTCP-FUZZ-SECRET-OUTSIDE-THE-ROOT";

/// Creates (once per process) `.../ixtcp-fuzz-site-PID/{root/..., secret}`.
fn site_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("ixtcp-fuzz-site-{}", std::process::id()));
        let root = base.join("root");
        let made = std::fs::create_dir_all(root.join("dir/sub"))
            .and_then(|()| std::fs::write(base.join("secret"), SECRET))
            .and_then(|()| std::fs::write(root.join("index.html"), b"<h1>index</h1>"))
            .and_then(|()| std::fs::write(root.join("dir/a.txt"), b"a"))
            .and_then(|()| std::fs::write(root.join("dir/sub/big.bin"), vec![7u8; 100_000]));
        if let Err(e) = made {
            panic!("fuzz site in {}: {e}", base.display());
        }
        root
    })
    .clone()
}

/// The connection as the server sees it.
struct Stream {
    chunks: VecDeque<Vec<u8>>,
    /// Say `WouldBlock` once before the next chunk.
    block: bool,
    out: Vec<u8>,
    write_cap: usize,
    writes: usize,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.block {
            self.block = false;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let Some(front) = self.chunks.front_mut() else { return Ok(0) };
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        front.drain(..n);
        if front.is_empty() {
            self.chunks.pop_front();
            self.block = true;
        }
        Ok(n)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        if self.writes.is_multiple_of(3) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.write_cap);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs one input: two bytes of settings (read chunk size, write size),
/// then the request bytes.
pub fn run(data: &[u8]) {
    let mut i = Input::new(data);
    let chunk = usize::from(i.u8() % 64) + 1;
    let write_cap = (usize::from(i.u8()) + 1) * 64;
    let request = i.bytes(usize::MAX);
    check_targets(request);
    let config = SiteConfig {
        root: Some(site_root()),
        cache_file_max: 4096,
        cache_total_max: 64 * 1024,
        revalidate: Duration::from_secs(3600),
    };
    let site = match Site::new(config) {
        Ok(s) => s,
        Err(e) => panic!("site: {e:?}"),
    };
    let core = HttpCore::new(site, Limits { max_header: 2048, max_body: 4096, max_queued: 8 });
    let mut server = HttpServer::new(core);
    let mut stream = Stream {
        chunks: request.chunks(chunk).map(<[u8]>::to_vec).collect(),
        block: false,
        out: Vec::new(),
        write_cap,
        writes: 0,
    };
    let mut tally = Tally::default();
    let now = Instant::now();
    let rounds = request.len() / chunk + 64;
    for _ in 0..rounds * 4 {
        if server.drive(&mut stream, &mut tally, now) == Step::Close {
            break;
        }
    }
    let out = &stream.out;
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1."),
        "response starts {:?}",
        String::from_utf8_lossy(&out[..out.len().min(64)])
    );
    assert!(!out.windows(SECRET.len()).any(|w| w == SECRET), "a file outside the root was served");
}

/// Every request-target-looking piece of the input through
/// `path::resolve`: what it accepts stays inside the root.
fn check_targets(request: &[u8]) {
    let Ok(text) = std::str::from_utf8(request) else { return };
    for target in text.split([' ', '\r', '\n']).filter(|t| !t.is_empty()).take(64) {
        if let Ok(r) = resolve(target) {
            assert!(!r.path.starts_with('/'), "{target:?} resolved to {:?}", r.path);
            assert!(r.path.split('/').all(|s| s != ".." && s != "."), "{target:?} resolved to {:?}", r.path);
            assert!(!r.path.contains('\0') && !r.path.contains('\\'), "{target:?} resolved to {:?}", r.path);
        }
    }
}

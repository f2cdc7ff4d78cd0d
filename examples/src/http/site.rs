//! The files `httpd` serves.
//!
//! With a document root, a file no larger than
//! [`SiteConfig::cache_file_max`] is read once and kept in memory (up to
//! [`SiteConfig::cache_total_max`] for all files together); larger files
//! are opened per request and streamed from disk as the connection takes
//! bytes. A cached file is checked against the disk (length and
//! modification time) at most once per [`SiteConfig::revalidate`], so an
//! edited file is served fresh without a `stat` per request.
//!
//! Each server core has its own `Site` (no locks on the request path; the
//! cache costs memory per core, like everything per core in ixtcp).
//!
//! The resolved path is canonicalised and must stay below the canonical
//! root, so a symbolic link pointing out of the root is refused (403) like
//! a `..`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::content_type;
use super::path::Resolved;

/// The page served when there is no document root.
pub const BUILTIN_PAGE: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>ixtcp httpd</title></head>
<body>
<h1>ixtcp httpd</h1>
<p>This page was served by <code>httpd</code>, a static file server running on
ixtcp: a userspace, multi-core TCP/IP stack in Rust (smoltcp per connection,
a poll-mode driver for the Intel 82599 NIC underneath).</p>
<p>Start it with <code>--root DIR</code> to serve the files of DIR instead.</p>
</body>
</html>
";

/// How a site serves files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// The document root; none: the built-in page only.
    pub root: Option<PathBuf>,
    /// Files up to this size are cached in memory.
    pub cache_file_max: u64,
    /// The most bytes cached per core.
    pub cache_total_max: u64,
    /// How long a cached file is served without checking the disk.
    pub revalidate: Duration,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            root: None,
            cache_file_max: 1024 * 1024,
            cache_total_max: 256 * 1024 * 1024,
            revalidate: Duration::from_secs(1),
        }
    }
}

/// A response body's source.
#[derive(Debug)]
pub enum Body {
    /// Bytes in memory (the built-in page, a cached file).
    Memory(Arc<[u8]>),
    /// A file streamed from disk.
    File(File),
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A file to send.
    Found {
        /// Its contents.
        body: Body,
        /// Its length.
        len: u64,
        /// Its media type.
        content_type: &'static str,
    },
    /// No such file (or a directory without index.html): 404.
    NotFound,
    /// Outside the root through a link, or not readable: 403.
    Forbidden,
    /// The disk failed: 500.
    Failed,
}

#[derive(Debug)]
struct Cached {
    body: Arc<[u8]>,
    content_type: &'static str,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// The files of one server core.
#[derive(Debug)]
pub struct Site {
    config: SiteConfig,
    root: Option<PathBuf>,
    builtin: Arc<[u8]>,
    cache: HashMap<String, Cached>,
    cached_bytes: u64,
}

/// Why a site could not be set up.
#[derive(Debug)]
pub struct SiteError(pub String);

impl std::fmt::Display for SiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SiteError {}

impl Site {
    /// A site as `config` describes; the root must be a readable directory.
    pub fn new(config: SiteConfig) -> Result<Site, SiteError> {
        let root = match &config.root {
            None => None,
            Some(r) => {
                let canonical = r
                    .canonicalize()
                    .map_err(|e| SiteError(format!("--root {}: {e}; give an existing directory", r.display())))?;
                if !canonical.is_dir() {
                    return Err(SiteError(format!("--root {}: not a directory", r.display())));
                }
                Some(canonical)
            }
        };
        Ok(Site { config, root, builtin: Arc::from(BUILTIN_PAGE.as_bytes()), cache: HashMap::new(), cached_bytes: 0 })
    }

    /// Bytes held in the cache.
    pub fn cached_bytes(&self) -> u64 {
        self.cached_bytes
    }

    /// Finds what `target` names.
    pub fn lookup(&mut self, target: &Resolved, now: Instant) -> Lookup {
        let Some(root) = self.root.clone() else {
            return if target.path.is_empty() || target.path == "index.html" {
                Lookup::Found {
                    len: self.builtin.len() as u64,
                    body: Body::Memory(Arc::clone(&self.builtin)),
                    content_type: content_type("index.html"),
                }
            } else {
                Lookup::NotFound
            };
        };
        let key = if target.directory {
            if target.path.is_empty() { "index.html".to_string() } else { format!("{}/index.html", target.path) }
        } else {
            target.path.clone()
        };
        if let Some(c) = self.cache.get(&key)
            && now.saturating_duration_since(c.checked) < self.config.revalidate
        {
            return Lookup::Found {
                len: c.body.len() as u64,
                body: Body::Memory(Arc::clone(&c.body)),
                content_type: c.content_type,
            };
        }
        self.load(&root, key, now)
    }

    fn load(&mut self, root: &Path, mut key: String, now: Instant) -> Lookup {
        let mut path = root.join(&key);
        let mut meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => return self.forget(&key, miss(&e)),
        };
        if meta.is_dir() {
            key = format!("{key}/index.html");
            path = root.join(&key);
            meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => return miss(&e),
            };
        }
        if !meta.is_file() {
            return self.forget(&key, Lookup::NotFound);
        }
        match path.canonicalize() {
            Ok(c) if c.starts_with(root) => {}
            Ok(_) => return self.forget(&key, Lookup::Forbidden),
            Err(e) => return self.forget(&key, miss(&e)),
        }
        let len = meta.len();
        let modified = meta.modified().ok();
        let ctype = content_type(&key);
        if let Some(c) = self.cache.get_mut(&key)
            && c.body.len() as u64 == len
            && c.modified == modified
        {
            c.checked = now;
            return Lookup::Found { len, body: Body::Memory(Arc::clone(&c.body)), content_type: c.content_type };
        }
        self.forget(&key, Lookup::NotFound);
        let fits = len <= self.config.cache_file_max && self.cached_bytes + len <= self.config.cache_total_max;
        if fits {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let body: Arc<[u8]> = Arc::from(bytes);
                    let len = body.len() as u64;
                    self.cached_bytes += len;
                    let entry = Cached { body: Arc::clone(&body), content_type: ctype, modified, checked: now };
                    self.cache.insert(key, entry);
                    Lookup::Found { len, body: Body::Memory(body), content_type: ctype }
                }
                Err(e) => miss(&e),
            }
        } else {
            match File::open(&path) {
                Ok(f) => Lookup::Found { len, body: Body::File(f), content_type: ctype },
                Err(e) => miss(&e),
            }
        }
    }

    /// Drops `key` from the cache and returns `result`.
    fn forget(&mut self, key: &str, result: Lookup) -> Lookup {
        if let Some(c) = self.cache.remove(key) {
            self.cached_bytes -= c.body.len() as u64;
        }
        result
    }
}

fn miss(e: &io::Error) -> Lookup {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Lookup::NotFound,
        io::ErrorKind::PermissionDenied => Lookup::Forbidden,
        _ => Lookup::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::path::resolve;

    fn found(l: Lookup) -> (Vec<u8>, bool) {
        match l {
            Lookup::Found { body: Body::Memory(b), len, .. } => {
                assert_eq!(len, b.len() as u64);
                (b.to_vec(), true)
            }
            Lookup::Found { body: Body::File(mut f), len, .. } => {
                let mut v = Vec::new();
                io::Read::read_to_end(&mut f, &mut v).unwrap();
                assert_eq!(len, v.len() as u64);
                (v, false)
            }
            other => panic!("not found: {other:?}"),
        }
    }

    #[test]
    fn builtin_page_without_root() {
        let mut s = Site::new(SiteConfig::default()).unwrap();
        let now = Instant::now();
        assert_eq!(found(s.lookup(&resolve("/").unwrap(), now)).0, BUILTIN_PAGE.as_bytes());
        assert_eq!(found(s.lookup(&resolve("/index.html").unwrap(), now)).0, BUILTIN_PAGE.as_bytes());
        assert!(matches!(s.lookup(&resolve("/other").unwrap(), now), Lookup::NotFound));
    }

    #[test]
    fn small_files_are_cached_large_ones_streamed_and_edits_seen() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join("big.bin"), vec![7u8; 5000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/index.html"), b"<p>sub</p>").unwrap();
        let cfg = SiteConfig { root: Some(dir.path().into()), cache_file_max: 1000, ..SiteConfig::default() };
        let mut s = Site::new(cfg).unwrap();
        let now = Instant::now();
        assert_eq!(found(s.lookup(&resolve("/small.txt").unwrap(), now)), (b"hello".to_vec(), true));
        assert_eq!(s.cached_bytes(), 5);
        let (big, cached) = found(s.lookup(&resolve("/big.bin").unwrap(), now));
        assert_eq!((big.len(), cached), (5000, false));
        assert_eq!(s.cached_bytes(), 5);
        assert_eq!(found(s.lookup(&resolve("/sub/").unwrap(), now)).0, b"<p>sub</p>");
        assert_eq!(found(s.lookup(&resolve("/sub").unwrap(), now)).0, b"<p>sub</p>");
        assert!(matches!(s.lookup(&resolve("/").unwrap(), now), Lookup::NotFound));
        assert!(matches!(s.lookup(&resolve("/missing").unwrap(), now), Lookup::NotFound));
        // Edited: served from the cache within the revalidation time, fresh after it.
        std::fs::write(dir.path().join("small.txt"), b"hello, world").unwrap();
        assert_eq!(found(s.lookup(&resolve("/small.txt").unwrap(), now)).0, b"hello");
        let later = now + Duration::from_secs(2);
        assert_eq!(found(s.lookup(&resolve("/small.txt").unwrap(), later)).0, b"hello, world");
        assert_eq!(s.cached_bytes(), 12 + 10, "small.txt and sub/index.html");
        std::fs::remove_file(dir.path().join("small.txt")).unwrap();
        let later = later + Duration::from_secs(2);
        assert!(matches!(s.lookup(&resolve("/small.txt").unwrap(), later), Lookup::NotFound));
        assert_eq!(s.cached_bytes(), 10);
    }

    #[test]
    fn a_link_out_of_the_root_is_forbidden() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        let mut s = Site::new(SiteConfig { root: Some(dir.path().into()), ..SiteConfig::default() }).unwrap();
        assert!(matches!(s.lookup(&resolve("/link").unwrap(), Instant::now()), Lookup::Forbidden));
    }

    #[test]
    fn a_missing_root_is_a_clear_error() {
        let e = Site::new(SiteConfig { root: Some("/no/such/dir".into()), ..SiteConfig::default() }).unwrap_err();
        assert!(e.to_string().contains("--root /no/such/dir"), "{e}");
    }
}

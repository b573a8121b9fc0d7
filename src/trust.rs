//! Which certificate authorities gatehouse's HTTPS calls trust.
//!
//! The system's store, as OpenSSL (and so Prosody and curl) finds it: `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when set, else the distribution's bundle (Debian's `/etc/ssl/certs`). On top of
//! it, one extra PEM file the operator names (Prosody's global `gatehouse_ca_file`), for a
//! key server, UVS, Synapse or Guild API behind a company CA. Only when the system has no store
//! at all and no extra file is named do the Mozilla roots built into gatehouse apply, so a bare
//! container still reaches public servers.
//!
//! The store is read once per process: by [`configure`] (Prosody's modules call it through
//! `gatehouse.http.configure` when they load) or, if nothing configured it, on first use.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ureq::tls::{Certificate, PemItem, RootCerts};

/// An extra CA file larger than this is refused: a bundle of every public root is ~220 KiB.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// What [`configure`] loaded, for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Certificates found in the system's store.
    pub system: usize,
    /// Certificates read from the extra CA file.
    pub extra: usize,
    /// Whether the built-in Mozilla roots apply because the system has no store.
    pub built_in: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.built_in {
            return write!(f, "no system CA store found; using gatehouse's built-in Mozilla roots");
        }
        write!(f, "{} CA certificates from the system store", self.system)?;
        if self.extra > 0 {
            write!(f, " and {} from gatehouse_ca_file", self.extra)?;
        }
        Ok(())
    }
}

struct Trust {
    roots: RootCerts,
    ca_file: Option<PathBuf>,
    summary: Summary,
    /// Which load this is: TLS state built from `roots` may be kept for as long as it holds.
    generation: u64,
}

static TRUST: RwLock<Option<Arc<Trust>>> = RwLock::new(None);
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// Loads the system's store plus `ca_file` (if any) and makes them what every later HTTPS call
/// trusts. Calling it again with the same file is a no-op; with another file it reloads.
///
/// Fails, changing nothing, when the extra file can't be read or holds no certificate: an
/// operator who named a CA file expects it to be used, so that is reported, not skipped.
pub fn configure(ca_file: Option<&Path>) -> Result<Summary, String> {
    if let Some(current) = TRUST.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        if current.ca_file.as_deref() == ca_file {
            return Ok(current.summary.clone());
        }
    }
    let extra = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    let trust = build(system_store(), extra, ca_file);
    let summary = trust.summary.clone();
    *TRUST.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(trust));
    Ok(summary)
}

/// The roots an HTTPS call trusts now (reading the system store on first use if
/// [`configure`] never ran), and the generation of that trust configuration: a number that
/// changes whenever [`configure`] loads another one, so TLS state built from the roots (the
/// parsed root store) can be shared for exactly as long as they are in force.
pub(crate) fn root_certs() -> (RootCerts, u64) {
    if let Some(current) = TRUST.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return (current.roots.clone(), current.generation);
    }
    let mut slot = TRUST.write().unwrap_or_else(|e| e.into_inner());
    let trust = slot.get_or_insert_with(|| Arc::new(build(system_store(), Vec::new(), None)));
    (trust.roots.clone(), trust.generation)
}

fn build(
    system: Vec<Certificate<'static>>,
    extra: Vec<Certificate<'static>>,
    ca_file: Option<&Path>,
) -> Trust {
    let built_in = system.is_empty() && extra.is_empty();
    let summary = Summary { system: system.len(), extra: extra.len(), built_in };
    let roots =
        if built_in { RootCerts::WebPki } else { RootCerts::from(system.into_iter().chain(extra)) };
    let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
    Trust { roots, ca_file: ca_file.map(Path::to_path_buf), summary, generation }
}

/// The system's store. Unreadable entries in it are skipped, as OpenSSL does.
fn system_store() -> Vec<Certificate<'static>> {
    rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect()
}

/// Every certificate in a PEM file (private keys and other sections are ignored).
fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let shown = path.display();
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?.len();
    if size > MAX_CA_FILE_BYTES {
        return Err(format!(
            "{shown} is {size} bytes; a CA file over {MAX_CA_FILE_BYTES} is refused"
        ));
    }
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(format!("{shown} is not valid PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err(format!("{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;

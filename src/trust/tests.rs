use super::*;

/// A self-signed CA made for these tests (its key was not kept). Only parsing is tested here; the
/// TLS handshakes against a CA made at test time are tests/e2e/private_ca.test.js.
const CA_PEM: &str = include_str!("../../tests/fixtures/test-ca.pem");

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-trust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn test_reads_every_certificate_and_skips_other_sections() {
    let pem = format!("comment line\n{CA_PEM}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{CA_PEM}");
    let certs = read_ca_file(&temp_file("two.pem", pem.as_bytes())).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].der(), certs[1].der());
}

#[test]
fn test_refuses_a_missing_empty_or_broken_file() {
    let missing = read_ca_file(Path::new("/nonexistent/gatehouse-ca.pem")).unwrap_err();
    assert!(missing.contains("/nonexistent/gatehouse-ca.pem"), "{missing}");
    let no_cert = read_ca_file(&temp_file("none.pem", b"just text\n")).unwrap_err();
    assert!(no_cert.contains("holds no PEM certificate"), "{no_cert}");
    let broken = CA_PEM.replace("MIIB", "M!!B");
    let err = read_ca_file(&temp_file("broken.pem", broken.as_bytes())).unwrap_err();
    assert!(err.contains("not valid PEM"), "{err}");
}

#[test]
fn test_refuses_an_oversized_file() {
    let big = vec![b'x'; MAX_CA_FILE_BYTES as usize + 1];
    let err = read_ca_file(&temp_file("big.pem", &big)).unwrap_err();
    assert!(err.contains("is refused"), "{err}");
}

#[test]
fn test_extra_file_adds_to_the_system_store() {
    let ca = read_ca_file(&temp_file("one.pem", CA_PEM.as_bytes())).unwrap();
    let trust = build(ca.clone(), ca.clone(), Some(Path::new("/x.pem")));
    assert_eq!(trust.summary, Summary { system: 1, extra: 1, built_in: false });
    match trust.roots {
        RootCerts::Specific(certs) => assert_eq!(certs.len(), 2),
        _ => panic!("expected the system's and the file's certificates"),
    }
}

#[test]
fn test_built_in_roots_only_when_there_is_no_store_and_no_file() {
    let ca = read_ca_file(&temp_file("only.pem", CA_PEM.as_bytes())).unwrap();
    let bare = build(Vec::new(), Vec::new(), None);
    assert!(bare.summary.built_in && matches!(bare.roots, RootCerts::WebPki));
    // A named file never silently widens to the built-in roots.
    let file_only = build(Vec::new(), ca, Some(Path::new("/x.pem")));
    assert!(!file_only.summary.built_in);
    assert!(matches!(file_only.roots, RootCerts::Specific(ref c) if c.len() == 1));
}

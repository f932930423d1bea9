//! What the fuzz targets share: a throwaway CA made by `getacert init`.

use std::path::PathBuf;

/// A new CA (EC P-256 key) in a temporary directory; returns the directory (removed when
/// dropped) and its ca.conf.
pub fn throwaway_ca() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    getacert::admin::init(
        &ca,
        &getacert::admin::InitOptions {
            cn: "fuzz CA".into(),
            org: Some("Fuzz".into()),
            country: None,
            key: "ec:P-256".into(),
            days: 30,
        },
    )
    .expect("getacert init");
    (dir, ca.join("ca.conf"))
}

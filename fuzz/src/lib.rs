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

/// The real handler over a throwaway CA, made once per fuzzing process.
pub fn app() -> &'static getacert::app::App {
    static APP: std::sync::OnceLock<(tempfile::TempDir, getacert::app::App)> = std::sync::OnceLock::new();
    &APP.get_or_init(|| {
        let (dir, conf) = throwaway_ca();
        let config = getacert::config::Config::load(&conf).expect("load ca.conf");
        (dir, getacert::app::App::new(config).expect("App::new"))
    })
    .1
}

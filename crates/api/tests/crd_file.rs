//! deploy/crds/metallb.io.yaml must be exactly what the code generates.

use std::path::PathBuf;

fn crd_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds/metallb.io.yaml")
}

#[test]
fn deploy_crds_file_is_up_to_date() {
    let rendered = ferrolb_api::crds::render_yaml();
    let path = crd_file();
    if std::env::var_os("UPDATE_CRDS").is_some_and(|value| value == "1") {
        if let Err(err) = std::fs::write(&path, &rendered) {
            panic!("cannot write {}: {err}", path.display());
        }
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "{} is stale or missing; regenerate it with\n  \
         cargo run -p ferrolb -- crds > deploy/crds/metallb.io.yaml\n\
         or\n  UPDATE_CRDS=1 cargo test -p ferrolb-api --test crd_file",
        path.display()
    );
}

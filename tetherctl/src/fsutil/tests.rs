use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn atomic_write_is_private_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.json");
    write_atomic(&path, b"one").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"one");
    assert_eq!(mode(&path), 0o600);
    // An existing, more open file is replaced by a private one.
    set_mode(&path, 0o644).unwrap();
    write_atomic(&path, b"two").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert_eq!(mode(&path), 0o600);
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["f.json"]);
}

#[test]
fn atomic_write_into_a_missing_dir_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    assert!(write_atomic(&dir.path().join("no/such/f"), b"x").is_err());
}

#[test]
fn private_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    create_private_dir_all(&nested).unwrap();
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    create_private_dir_all(&nested).unwrap();
    let file = nested.join("lock");
    open_private(&file).unwrap();
    assert_eq!(mode(&file), 0o600);
}

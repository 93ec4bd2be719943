//! keepalived's `check_script_secure`: a script run as root must not be changeable by anyone
//! but root — neither the file nor any directory above it.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Why a script is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Insecure {
    /// It cannot be resolved (missing, or a directory on the way is not accessible).
    NotFound(String),
    /// Something on its path that is not a directory, or the script is not a file.
    WrongType(PathBuf),
    /// This path (the script or a directory above it) is writable by someone other than root.
    Writable(PathBuf),
}

/// Checks the script and every directory above it (symlinks resolved first, as keepalived's
/// realpath): each must be owned by root; a file, or a directory without the sticky bit, must
/// not be group-writable (unless the group is root) nor world-writable.
pub fn check(script: &str) -> Result<(), Insecure> {
    let real = std::fs::canonicalize(script).map_err(|e| Insecure::NotFound(e.to_string()))?;
    let mut prefix = PathBuf::new();
    let components: Vec<_> = real.components().collect();
    for (k, c) in components.iter().enumerate() {
        prefix.push(c);
        let last = k + 1 == components.len();
        let md =
            std::fs::symlink_metadata(&prefix).map_err(|e| Insecure::NotFound(e.to_string()))?;
        let ft = md.file_type();
        if (!last && !ft.is_dir()) || (last && !(ft.is_file() || ft.is_symlink())) {
            return Err(Insecure::WrongType(prefix));
        }
        if md.uid() != 0 {
            return Err(Insecure::Writable(prefix));
        }
        if ft.is_symlink() {
            continue;
        }
        let sticky_dir = ft.is_dir() && md.mode() & 0o1000 != 0;
        let group_writable = md.mode() & 0o020 != 0 && md.gid() != 0;
        let world_writable = md.mode() & 0o002 != 0;
        if !sticky_dir && (group_writable || world_writable) {
            return Err(Insecure::Writable(prefix));
        }
    }
    Ok(())
}

/// For messages: the path as written.
pub fn shown(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn root_owned_system_scripts_are_secure() {
        assert_eq!(check("/bin/sh"), Ok(()));
    }

    #[test]
    fn a_world_writable_script_or_directory_is_insecure() {
        let dir = std::env::temp_dir().join(format!("sec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = dir.join("chk.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o757)).unwrap();
        assert_eq!(
            check(script.to_str().unwrap()),
            Err(Insecure::Writable(script.clone()))
        );
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // /tmp itself is sticky: fine. Our directory is not.
        assert_eq!(check(script.to_str().unwrap()), Ok(()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            check(script.to_str().unwrap()),
            Err(Insecure::Writable(dir.clone()))
        );
        assert!(matches!(
            check("/nonexistent/x"),
            Err(Insecure::NotFound(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

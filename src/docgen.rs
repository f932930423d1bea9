//! The man pages and shell completions the Debian package ships, generated from the
//! command line's own definition so they say exactly what `--help` says
//! (`getacert generate-docs DIR`, a hidden command run by scripts/deb).

use std::fs;
use std::path::Path;

use clap_complete::Shell;

/// Writes into `dir`: `man/getacert.1` and one page per command (`getacert-init.1` …),
/// and `completions/` for bash, zsh and fish.
pub fn write(cmd: clap::Command, dir: &Path) -> Result<(), String> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let cmd = cmd.name("getacert");
    clap_mangen::generate_to(cmd.clone(), &man).map_err(|e| format!("{}: {e}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cmd.clone();
        clap_complete::generate_to(shell, &mut cmd, "getacert", &completions)
            .map_err(|e| format!("{}: {e}", completions.display()))?;
    }
    Ok(())
}

//! `docs/configuration.md` lists every setting the service reads: each environment
//! variable `alis-import serve --help` names appears in it (regenerate it with
//! `scripts/gen-config-doc` after adding a flag).

use std::process::Command;

#[test]
fn the_configuration_document_lists_every_environment_variable() {
    let help = Command::new(env!("CARGO_BIN_EXE_alis-import"))
        .args(["serve", "--help"])
        .output()
        .expect("run alis-import serve --help");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let variables: Vec<&str> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split('=').next())
        .collect();
    assert!(variables.len() > 30, "found the settings: {variables:?}");
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .expect("read docs/configuration.md");
    let missing: Vec<&&str> = variables
        .iter()
        .filter(|v| !doc.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks {missing:?}: run scripts/gen-config-doc"
    );
}

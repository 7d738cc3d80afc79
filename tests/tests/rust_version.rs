//! The workspace's `rust-version` is true: not below the `rust-version` any package in the
//! dependency graph declares (issue 13 found "1.80" while dependencies needed 1.85 to 1.91),
//! and every crate of the workspace inherits it.

use std::process::Command;

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn rust_version_is_not_below_any_dependency_and_every_crate_inherits_it() {
    // This machine's platform only: packages for other platforms (Windows consoles) are not
    // downloaded by a build here, and the check must not need the network.
    let rustc = Command::new("rustc").arg("-vV").output().expect("run rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let packages = meta["packages"].as_array().unwrap();
    let ours: Vec<(&str, Option<&str>)> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap()))
        .map(|p| (p["name"].as_str().unwrap(), p["rust_version"].as_str()))
        .collect();
    let declared = ours[0].1.expect("the workspace declares a rust-version");
    for (name, v) in &ours {
        assert_eq!(
            *v,
            Some(declared),
            "{name} must inherit the workspace's rust-version"
        );
    }
    let newest = packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap()))
        .filter_map(|p| Some((p["rust_version"].as_str()?, p["name"].as_str()?)))
        .max_by_key(|(v, _)| version(v))
        .expect("dependencies declare rust versions");
    assert!(
        version(declared) >= version(newest.0),
        "rust-version {declared} is below {} of {}",
        newest.0,
        newest.1
    );
}

//! The sample configuration in `docs/ixtcp.toml` lists every key; it must
//! stay loadable, valid, and complete.

use ixtcp_stack::StackConfig;

const SAMPLE: &str = include_str!("../../docs/ixtcp.toml");

#[test]
fn the_documented_sample_loads_and_validates() {
    let cfg = StackConfig::from_toml_str(SAMPLE).unwrap_or_else(|e| panic!("docs/ixtcp.toml: {e}"));
    cfg.validate().unwrap_or_else(|e| panic!("docs/ixtcp.toml: {e}"));
    assert_eq!(cfg.ip, std::net::Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(cfg.static_neighbors.len(), 1);
}

#[test]
fn the_documented_sample_names_every_key() {
    // Every field of the default config, as TOML, must appear in the sample
    // (commented out or not), so the documentation cannot fall behind.
    let defaults = StackConfig::default();
    let fields = format!("{defaults:?}");
    let keys: Vec<&str> = fields
        .split(['{', ','])
        .filter_map(|part| part.trim().split_once(':').map(|(k, _)| k.trim()))
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert!(keys.len() > 20, "parsed too few keys from {fields}");
    for key in keys {
        let documented = SAMPLE.lines().any(|l| {
            let l = l.trim_start_matches(['#', ' ', '[']);
            l.starts_with(&format!("{key} ")) || l.starts_with(&format!("{key}=")) || l.starts_with(&format!("{key}]"))
        });
        assert!(documented, "docs/ixtcp.toml does not mention `{key}`");
    }
}

//! A registry's base URL as its clients take it.

use url::Url;

/// `text` as a registry's base URL: `http` or `https`, its path ending in `/` so that request
/// paths join below it (`http://host/fleet` serves `http://host/fleet/servers`). The error is
/// why it is not one.
pub fn registry_base_url(text: &str) -> Result<Url, String> {
    let mut base = Url::parse(text).map_err(|e| e.to_string())?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err("the scheme must be http or https".into());
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_below_the_base() {
        let base = registry_base_url("http://127.0.0.1:4000/fleet").expect("a base");
        assert_eq!(
            base.join("servers").expect("joins").as_str(),
            "http://127.0.0.1:4000/fleet/servers"
        );
        let root = registry_base_url("https://registry.example").expect("a base");
        assert_eq!(root.as_str(), "https://registry.example/");
    }

    #[test]
    fn other_schemes_and_non_urls_are_refused() {
        assert_eq!(
            registry_base_url("ftp://host/").unwrap_err(),
            "the scheme must be http or https"
        );
        assert!(registry_base_url("not a url").is_err());
    }
}

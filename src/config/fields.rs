//! Checks and parsers for single fields of the configuration that need more than a type: lists
//! that arrive from the environment as strings, browser origins, cookie names.

use serde::Deserialize;

/// Reads a list from TOML as it is, and from the environment, where it can only be a string, as
/// comma-separated items (`http://a:3000,https://b.example`); an empty string is an empty list.
pub(crate) fn list_or_comma_separated<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(items) => items,
        ListOrString::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// An origin as a browser serializes it in `Origin`: `http` or `https`, a lowercase host, a port
/// only when it is not the scheme's default, and nothing after. Origins are compared as exact
/// strings, so a form a browser never sends would silently match nothing.
pub(super) fn check_origin(origin: &str) -> Result<(), &'static str> {
    let uri: http::Uri = origin
        .parse()
        .map_err(|_| "is not an origin like https://app.example.com")?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err("is not an origin like https://app.example.com (\"*\" is not allowed: list each origin)");
    };
    if scheme != "http" && scheme != "https" {
        return Err("must start with http:// or https://");
    }
    if origin != format!("{scheme}://{authority}") {
        return Err(
            "must be scheme://host[:port] with nothing after it (no path, no trailing slash)",
        );
    }
    if authority.as_str().contains('@') {
        return Err("must not hold a user name");
    }
    if origin != origin.to_ascii_lowercase() {
        return Err("must be lowercase, as browsers send it");
    }
    if matches!(
        (scheme, authority.port_u16()),
        ("http", Some(80)) | ("https", Some(443))
    ) {
        return Err("must leave out the scheme's default port, as browsers do");
    }
    Ok(())
}

/// A cookie name is an RFC 6265 token: visible ASCII except separators.
pub(super) fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

//! What the configuration accepts, refuses and defaults to.

use super::*;

#[test]
fn defaults_need_a_secret() {
    let err = Config::default().validate().unwrap_err();
    assert!(err.to_string().contains("jwt_secret"), "{err}");
}

/// A secret long enough for HS256, for tests that are about something else.
const SECRET: &str = "test-secret-0123456789abcdef-0123";

#[test]
fn a_short_hs256_secret_is_refused_and_32_bytes_pass() {
    let mut c = Config::default();
    c.auth.jwt_secret = "x".repeat(MIN_HS256_SECRET_BYTES - 1);
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("jwt_secret") && err.contains("31 bytes") && !err.contains('\n'),
        "one clear line naming the key and the length: {err}"
    );
    c.auth.jwt_secret = "x".repeat(MIN_HS256_SECRET_BYTES);
    c.validate().unwrap();
    // Public-key algorithms have no shared secret to check.
    c.auth.jwt_secret = "short".into();
    c.auth.algorithm = JwtAlgorithm::EdDSA;
    c.auth.jwt_public_key = "key.pem".into();
    c.validate().unwrap();
}

#[test]
fn store_sizes_must_be_positive() {
    let mut c = Config::default();
    c.auth.jwt_secret = SECRET.into();
    c.validate().unwrap();
    c.store.background_threads = 0;
    let err = c.validate().unwrap_err();
    assert!(err.to_string().contains("background_threads"), "{err}");
    c.store.background_threads = 1;
    c.store.max_batch = 0;
    let err = c.validate().unwrap_err();
    assert!(err.to_string().contains("max_batch"), "{err}");
    c.store.max_batch = 1;
    c.store.max_queue = 0;
    let err = c.validate().unwrap_err();
    assert!(err.to_string().contains("max_queue"), "{err}");
}

#[test]
fn allowed_origins_come_as_a_list_or_a_comma_separated_string() {
    let with = |v: figment::value::Value| -> Vec<String> {
        let c: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Serialized::default("http.allowed_origins", v))
            .extract()
            .unwrap();
        c.http.allowed_origins
    };
    let want = vec![
        "http://127.0.0.1:3000".to_string(),
        "https://app.example".into(),
    ];
    assert_eq!(
        with("http://127.0.0.1:3000, https://app.example".into()),
        want
    );
    assert_eq!(
        with(vec!["http://127.0.0.1:3000", "https://app.example"].into()),
        want
    );
    assert!(with("".into()).is_empty(), "an empty string is no origins");
}

#[test]
fn origins_must_be_written_as_browsers_send_them() {
    let mut c = Config::default();
    c.auth.jwt_secret = SECRET.into();
    for ok in [
        "https://app.example.com",
        "http://127.0.0.1:5173",
        "http://localhost:3000",
    ] {
        c.http.allowed_origins = vec![ok.into()];
        c.validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "*",
        "null",
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://App.Example.com",
        "https://app.example.com:443",
        "http://app.example.com:80",
        "ftp://app.example.com",
        "https://user@app.example.com",
    ] {
        c.http.allowed_origins = vec![bad.into()];
        let err = c.validate().expect_err(bad).to_string();
        assert!(
            err.contains("http.allowed_origins") && err.contains(bad) && !err.contains('\n'),
            "{bad}: one line naming the key and the value: {err}"
        );
    }
}

#[test]
fn cookie_name_must_be_a_cookie_name() {
    let mut c = Config::default();
    c.auth.jwt_secret = SECRET.into();
    c.auth.cookie_name = Some("access_token".into());
    c.validate().unwrap();
    for bad in ["", "a b", "a=b", "a;b"] {
        c.auth.cookie_name = Some(bad.into());
        let err = c.validate().expect_err(bad).to_string();
        assert!(err.contains("auth.cookie_name"), "{bad}: {err}");
    }
}

#[test]
fn example_and_local_files_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["config/local.toml", "config/switchboard.example.toml"] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        let mut c: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&text))
            .extract()
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        if c.auth.jwt_secret.is_empty() {
            c.auth.jwt_secret = SECRET.into();
        }
        c.validate().unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[test]
fn example_documents_the_defaults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/switchboard.example.toml")).unwrap();
    let from_file: Config = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::string(&text))
        .extract()
        .unwrap();
    let a = serde_json::to_value(&from_file).unwrap();
    let b = serde_json::to_value(Config::default()).unwrap();
    assert_eq!(
        a, b,
        "switchboard.example.toml must show every default as it is"
    );
}

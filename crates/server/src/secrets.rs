//! Secrets kept in the data directory, created on first start with mode 0600: the API
//! access key pair (unless `VC_ACCESS_KEY_ID`/`VC_SECRET_ACCESS_KEY` are set) and the join-token
//! key (unless `VC_TOKEN_KEY` is set, as several nodes sharing one database must).

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use rand::Rng;

/// Where the credentials came from, so that `serve` prints a freshly generated pair once.
pub enum Origin {
    Environment,
    Stored,
    Generated,
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

pub fn api_credentials(data_dir: &Path) -> anyhow::Result<(api::sigv4::Credentials, Origin)> {
    let id = std::env::var("VC_ACCESS_KEY_ID")
        .ok()
        .filter(|s| !s.is_empty());
    let secret = std::env::var("VC_SECRET_ACCESS_KEY")
        .ok()
        .filter(|s| !s.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => {
            return Ok((
                api::sigv4::Credentials::new(id, secret),
                Origin::Environment,
            ));
        }
        (None, None) => {}
        _ => bail!("set both VC_ACCESS_KEY_ID and VC_SECRET_ACCESS_KEY, or neither"),
    }
    let path = data_dir.join("api-credentials");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        let (Some(id), Some(secret)) = (lines.next(), lines.next()) else {
            bail!(
                "{} must hold the access key id and the secret on two lines",
                path.display()
            );
        };
        return Ok((
            api::sigv4::Credentials::new(id.trim(), secret.trim()),
            Origin::Stored,
        ));
    }
    let id = format!(
        "AKVC{}",
        random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    );
    let secret = random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    write_private(&path, &format!("{id}\n{secret}\n"))?;
    Ok((api::sigv4::Credentials::new(id, secret), Origin::Generated))
}

pub fn token_key(data_dir: &Path) -> anyhow::Result<domain::token::TokenKey> {
    let parse = |hex: &str, from: &str| -> anyhow::Result<domain::token::TokenKey> {
        let bytes = hex::decode(hex.trim()).with_context(|| format!("{from} is not hex"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{from} must be 32 bytes (64 hex digits)"))?;
        Ok(domain::token::TokenKey::from_bytes(arr))
    };
    if let Ok(v) = std::env::var("VC_TOKEN_KEY") {
        return parse(&v, "VC_TOKEN_KEY");
    }
    let path = data_dir.join("token.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return parse(&text, &path.display().to_string());
    }
    let key = domain::token::TokenKey::generate();
    write_private(&path, &format!("{}\n", hex::encode(key.as_bytes())))?;
    Ok(key)
}

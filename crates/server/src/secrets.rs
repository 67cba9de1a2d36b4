//! Secrets kept in the data directory, created on first start with mode 0600: the API
//! access key pair (unless `VC_ACCESS_KEY_ID`/`VC_SECRET_ACCESS_KEY` are set) and the join-token
//! key (unless `VC_TOKEN_KEY` is set, as several nodes sharing one database must).
//!
//! The data directory itself is kept at 0700 and the SQLite database with its `-wal` and
//! `-shm` files at 0600 ([`private_data_dir`], [`private_database_files`]): call records,
//! token hashes and logs are nobody else's to read.

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

/// What a data directory of ours holds, besides `*.log` files (anything else there means it
/// is not only ours).
const OURS: &[&str] = &[
    "api-credentials",
    "token.key",
    "voice-connector.db",
    "voice-connector.db-wal",
    "voice-connector.db-shm",
    "tls",
    "logs",
];

/// Creates the data directory with mode 0700, or tightens an existing one to 0700 when it is
/// empty or holds only this server's files. A directory shared with others (world-writable
/// with the sticky bit, like /tmp, or holding foreign files) is left alone with a warning.
pub fn private_data_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating data dir {}", dir.display()))?;
        }
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("reading data dir {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 == 0 {
            return Ok(());
        }
        let ours = mode & 0o1000 == 0
            && std::fs::read_dir(dir)?.filter_map(Result::ok).all(|e| {
                let name = e.file_name();
                OURS.iter().any(|n| name == *n) || name.to_string_lossy().ends_with(".log")
            });
        if !ours {
            tracing::warn!(dir = %dir.display(), mode = %format!("{:o}", mode & 0o7777), "the data dir is readable by others and not only ours; left as it is (chmod 700 it)");
            return Ok(());
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making data dir {} private (0700)", dir.display()))?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    Ok(())
}

/// The file of a `sqlite://PATH[?options]` URL (`None` for PostgreSQL or in-memory).
fn sqlite_path(database_url: &str) -> Option<std::path::PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
}

/// Creates a missing SQLite database file empty with mode 0600 before SQLite opens it, so it
/// is never readable by others, not even for a moment. Nothing to do for PostgreSQL.
pub fn create_private_database(database_url: &str) -> anyhow::Result<()> {
    let Some(path) = sqlite_path(database_url) else {
        return Ok(());
    };
    let parent_ok = match path.parent() {
        None => true,
        Some(p) => p.as_os_str().is_empty() || p.is_dir(),
    };
    if path.exists() || !parent_ok {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Sets mode 0600 on the SQLite database and its `-wal` and `-shm` files (SQLite gives those
/// the database file's mode when it creates them again). Nothing to do for PostgreSQL.
pub fn private_database_files(database_url: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Some(db) = sqlite_path(database_url) else {
            return Ok(());
        };
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private (0600)", path.display()))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = database_url;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn data_dir_and_database_files_are_private() {
        let base = std::env::temp_dir().join(format!("vc-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let data = base.join("data");
        super::private_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);

        // An existing dir of ours (here: empty, as a test fixture makes it) is tightened.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(data.join("token.key"), "k").unwrap();
        super::private_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);

        // One holding foreign files is not.
        let shared = base.join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(shared.join("someone-elses"), "x").unwrap();
        super::private_data_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);

        let url = format!(
            "sqlite://{}?mode=rwc",
            data.join("voice-connector.db").display()
        );
        super::create_private_database(&url).unwrap();
        assert_eq!(mode(&data.join("voice-connector.db")), 0o600);
        let wal = data.join("voice-connector.db-wal");
        std::fs::write(&wal, "").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::private_database_files(&url).unwrap();
        assert_eq!(mode(&wal), 0o600);
        assert!(super::sqlite_path("postgres://u@h/db").is_none());
        super::private_database_files("postgres://u@h/db").unwrap();
        let _ = std::fs::remove_dir_all(&base);
    }
}

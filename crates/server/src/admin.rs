//! `voice-connector admin carriers add|list|update|remove`: the operator's carrier trunks,
//! kept in the database every node reads (issue 12). Bad input is a [`BadInput`] error,
//! which `main` turns into exit code 2; passwords are never printed.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use domain::DomainError;
use domain::carrier::{
    Carrier, CarrierRegistration, CarrierStatus, CarrierTransport, HostPort, Secret, SrtpPolicy,
};
use store::{CarrierRepository as _, StoreError};

use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum CarrierCommand {
    /// Add a carrier, e.g. `add telco --address sip.telco.example:5060 --prefix +1`.
    Add {
        #[command(flatten)]
        settings: Settings,
        /// 1 to 64 letters, digits, '.', '_' or '-'.
        name: String,
        #[command(flatten)]
        fields: CarrierFields,
    },
    /// Show every carrier, its keep-alive status and its registration (never its password).
    List {
        #[command(flatten)]
        settings: Settings,
        /// One JSON document per carrier instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Change the given fields of a carrier; a repeated flag (--address, --prefix,
    /// --source) replaces the whole list.
    Update {
        #[command(flatten)]
        settings: Settings,
        name: String,
        #[command(flatten)]
        fields: CarrierFields,
        /// Drop the username and password (and registration).
        #[arg(long, conflicts_with_all = ["username", "password"])]
        clear_credentials: bool,
    },
    /// Remove a carrier.
    Remove {
        #[command(flatten)]
        settings: Settings,
        name: String,
    },
}

/// The carrier's settings as flags. Every one is optional here: `add` fills defaults,
/// `update` changes only what is given.
#[derive(Debug, Args, Default)]
pub struct CarrierFields {
    /// HOST:PORT to send calls to (repeat for more; tried in order).
    #[arg(long = "address", value_name = "HOST:PORT")]
    pub addresses: Vec<String>,
    /// udp, tcp or tls [add's default: udp].
    #[arg(long)]
    pub transport: Option<String>,
    /// E.164 prefix served, e.g. +1 or +4420 (repeat for more; none serves every number).
    #[arg(long = "prefix", value_name = "E164_PREFIX")]
    pub prefixes: Vec<String>,
    /// Lower is tried first [add's default: 1].
    #[arg(long)]
    pub priority: Option<u32>,
    /// Share among carriers of equal priority [add's default: 1].
    #[arg(long)]
    pub weight: Option<u32>,
    /// CIDR block (or address) the carrier's inbound calls come from (repeat for more).
    #[arg(long = "source", value_name = "CIDR")]
    pub sources: Vec<String>,
    /// Username for the carrier's 401/407 challenges and REGISTER.
    #[arg(long)]
    pub username: Option<String>,
    /// Password for the carrier (or VC_CARRIER_PASSWORD, which keeps it out of `ps`).
    #[arg(long, env = "VC_CARRIER_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Register with the carrier (needs --username and --password).
    #[arg(long, overrides_with = "no_register")]
    pub register: bool,
    /// Stop registering.
    #[arg(long)]
    pub no_register: bool,
    /// SRTP on the carrier leg: off, optional or mandatory [add's default: off].
    #[arg(long)]
    pub srtp: Option<String>,
    /// Codecs offered to the carrier in order, e.g. PCMU,PCMA,G722,opus [default: all].
    #[arg(long, value_delimiter = ',')]
    pub codecs: Option<Vec<String>>,
    /// Most concurrent calls through this carrier.
    #[arg(long)]
    pub max_calls: Option<u32>,
    /// Most new calls per second to this carrier.
    #[arg(long)]
    pub cps: Option<u32>,
    /// Send it emergency calls (routed to the connector's EmergencyCallingConfiguration
    /// DNIS); emergency calls go only to carriers marked so.
    #[arg(long, overrides_with = "no_emergency")]
    pub emergency: bool,
    /// Send it no emergency calls.
    #[arg(long)]
    pub no_emergency: bool,
    /// Keep the carrier but send it no calls.
    #[arg(long, overrides_with = "enable")]
    pub disable: bool,
    /// Send it calls again.
    #[arg(long)]
    pub enable: bool,
}

/// Input the operator must fix; `main` exits with status 2 for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn bad(e: DomainError) -> anyhow::Error {
    bad_named(e, |field| format!("--{field}"))
}

/// A [`BadInput`] for `e`, an invalid field shown as the argument `arg(field)` names.
pub(crate) fn bad_named(e: DomainError, arg: impl Fn(&str) -> String) -> anyhow::Error {
    let msg = match &e {
        DomainError::Invalid { field, reason } => format!("{}: {reason}", arg(field)),
        _ => e.to_string(),
    };
    BadInput(msg).into()
}

fn store_err(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Domain(d) => bad(d),
        other => other.into(),
    }
}

impl CarrierFields {
    /// Applies the given flags to `c` and validates the result.
    pub(crate) fn apply(self, c: &mut Carrier) -> Result<(), DomainError> {
        if let Some(t) = &self.transport {
            c.transport = t.parse::<CarrierTransport>()?;
        }
        if !self.addresses.is_empty() {
            let port = c.transport.default_port();
            c.addresses = self
                .addresses
                .iter()
                .map(|a| HostPort::parse(a, port))
                .collect::<Result<_, _>>()?;
        }
        if !self.prefixes.is_empty() {
            c.prefixes = self.prefixes;
        }
        if !self.sources.is_empty() {
            c.sources = self.sources;
        }
        if let Some(p) = self.priority {
            c.priority = p;
        }
        if let Some(w) = self.weight {
            c.weight = w;
        }
        if let Some(u) = self.username {
            c.username = Some(u);
        }
        if let Some(p) = self.password {
            c.password = Some(Secret::new(p));
        }
        if self.register {
            c.register = true;
        }
        if self.no_register {
            c.register = false;
        }
        if let Some(s) = &self.srtp {
            c.srtp = s.parse::<SrtpPolicy>()?;
        }
        if let Some(codecs) = self.codecs {
            c.codecs = codecs;
        }
        if let Some(m) = self.max_calls {
            c.max_calls = Some(m);
        }
        if let Some(n) = self.cps {
            c.cps = Some(n);
        }
        if self.emergency {
            c.emergency = true;
        }
        if self.no_emergency {
            c.emergency = false;
        }
        if self.disable {
            c.enabled = false;
        }
        if self.enable {
            c.enabled = true;
        }
        c.validate()
    }
}

/// Runs one `admin carriers` command.
pub async fn carriers(cmd: CarrierCommand) -> anyhow::Result<()> {
    match cmd {
        CarrierCommand::Add {
            settings,
            name,
            fields,
        } => {
            let mut c = Carrier::new(&name);
            fields.apply(&mut c).map_err(bad)?;
            let repo = crate::serve::open_store(&settings.resolve()?).await?;
            repo.insert_carrier(&c).await.map_err(store_err)?;
            println!("added carrier {} ({})", c.name, summary(&c));
        }
        CarrierCommand::Update {
            settings,
            name,
            fields,
            clear_credentials,
        } => {
            let repo = crate::serve::open_store(&settings.resolve()?).await?;
            let mut c = repo
                .carrier(&name)
                .await?
                .ok_or_else(|| BadInput(format!("no carrier named {name:?}")))?;
            if clear_credentials {
                c.username = None;
                c.password = None;
                c.register = false;
            }
            fields.apply(&mut c).map_err(bad)?;
            if !repo.update_carrier(&c).await.map_err(store_err)? {
                return Err(BadInput(format!("no carrier named {name:?}")).into());
            }
            println!("updated carrier {} ({})", c.name, summary(&c));
        }
        CarrierCommand::Remove { settings, name } => {
            let repo = crate::serve::open_store(&settings.resolve()?).await?;
            if !repo.delete_carrier(&name).await? {
                return Err(BadInput(format!("no carrier named {name:?}")).into());
            }
            println!("removed carrier {name}");
        }
        CarrierCommand::List { settings, json } => {
            let repo = crate::serve::open_store(&settings.resolve()?).await?;
            let carriers = repo.list_carriers().await?;
            let status = repo.list_carrier_status().await?;
            let regs = repo.list_carrier_registrations().await?;
            let now = domain::timestamp::now_millis();
            let rows: Vec<Row> = carriers
                .into_iter()
                .map(|c| {
                    let s = status.iter().find(|s| s.carrier == c.name);
                    let r = regs.iter().find(|r| r.carrier == c.name);
                    (c, CarrierStatus::label(s, now), s, r)
                })
                .collect();
            if json {
                for (c, label, s, r) in &rows {
                    println!("{}", public_json(c, label, *s, *r, now));
                }
            } else {
                print!("{}", table(&rows, now));
            }
        }
    }
    Ok(())
}

fn summary(c: &Carrier) -> String {
    let addrs: Vec<String> = c.addresses.iter().map(ToString::to_string).collect();
    format!("{} {}", c.transport.as_str(), addrs.join(","))
}

/// A carrier, its keep-alive label and status, and its registration.
type Row<'a> = (
    Carrier,
    &'static str,
    Option<&'a CarrierStatus>,
    Option<&'a CarrierRegistration>,
);

/// `registered (200), expires in 3590 s`, `failing (503)`, `-` (never registered).
fn registration(r: Option<&CarrierRegistration>, now_ms: i64) -> String {
    let Some(r) = r else {
        return "-".into();
    };
    let mut out = r.label(now_ms).to_string();
    if let Some(code) = r.last_status {
        let _ = write!(out, " ({code})");
    }
    if let Some(e) = r.expires_ms.filter(|e| *e > now_ms) {
        let _ = write!(out, ", expires in {} s", (e - now_ms) / 1000);
    }
    out
}

/// The carrier as JSON without its password, plus its status and registration.
fn public_json(
    c: &Carrier,
    label: &str,
    s: Option<&CarrierStatus>,
    r: Option<&CarrierRegistration>,
    now_ms: i64,
) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let had = o.remove("Password").is_some();
        o.insert("HasPassword".into(), had.into());
        o.insert("Status".into(), label.into());
        o.insert(
            "LastOptionsMs".into(),
            s.and_then(|s| s.last_options_ms).into(),
        );
        o.insert("LastStatus".into(), s.and_then(|s| s.last_status).into());
        o.insert(
            "Registration".into(),
            r.map(|r| r.label(now_ms)).unwrap_or("none").into(),
        );
        o.insert(
            "RegistrationStatus".into(),
            r.and_then(|r| r.last_status).into(),
        );
        o.insert(
            "RegistrationExpiresMs".into(),
            r.and_then(|r| r.expires_ms).into(),
        );
    }
    v
}

fn table(rows: &[Row], now_ms: i64) -> String {
    const HEAD: [&str; 13] = [
        "NAME",
        "STATUS",
        "ENABLED",
        "TRANSPORT",
        "ADDRESSES",
        "PREFIXES",
        "PRIORITY",
        "WEIGHT",
        "SOURCES",
        "AUTH",
        "SRTP",
        "LIMITS",
        "REGISTRATION",
    ];
    let dash = |v: String| if v.is_empty() { "-".to_string() } else { v };
    let mut cells: Vec<[String; 13]> = vec![HEAD.map(str::to_string)];
    for (c, label, s, r) in rows {
        let status = match s.and_then(|s| s.last_status) {
            Some(code) => format!("{label} ({code})"),
            None => (*label).to_string(),
        };
        let addrs: Vec<String> = c.addresses.iter().map(ToString::to_string).collect();
        let auth = match (&c.username, c.register) {
            (Some(u), true) => format!("{u} +register"),
            (Some(u), false) => u.clone(),
            (None, _) => String::new(),
        };
        let codecs = if c.codecs.is_empty() {
            "all".to_string()
        } else {
            c.codecs.join(",")
        };
        let limits = [
            c.max_calls.map(|m| format!("calls {m}")),
            c.cps.map(|n| format!("cps {n}")),
            c.emergency.then(|| "emergency".to_string()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        cells.push([
            c.name.clone(),
            status,
            if c.enabled { "yes" } else { "no" }.to_string(),
            c.transport.as_str().to_string(),
            addrs.join(","),
            dash(c.prefixes.join(",")),
            c.priority.to_string(),
            c.weight.to_string(),
            dash(c.sources.join(",")),
            dash(auth),
            format!("{} {codecs}", c.srtp.as_str()),
            dash(limits),
            registration(*r, now_ms),
        ]);
    }
    let widths: Vec<usize> = (0..HEAD.len())
        .map(|i| cells.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if rows.is_empty() {
        out.push_str("(no carriers; add one with `voice-connector admin carriers add`)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Carrier {
        let mut c = Carrier::new("telco");
        CarrierFields {
            addresses: vec!["127.0.0.40:5070".into()],
            prefixes: vec!["+1".into()],
            username: Some("trunk".into()),
            password: Some("pw-do-not-show".into()),
            register: true,
            codecs: Some(vec!["pcmu".into()]),
            cps: Some(5),
            ..Default::default()
        }
        .apply(&mut c)
        .expect("valid");
        c
    }

    #[test]
    fn table_and_json_never_show_the_password() {
        let c = sample();
        let t = table(&[(c.clone(), "unknown", None, None)], 0);
        assert!(!t.contains("pw-do-not-show"), "{t}");
        assert!(t.contains("trunk +register"), "{t}");
        assert!(t.contains("off PCMU"), "{t}");
        let j = public_json(&c, "up", None, None, 0).to_string();
        assert!(!j.contains("pw-do-not-show"), "{j}");
        assert!(j.contains("\"HasPassword\":true"), "{j}");
    }

    #[test]
    fn registration_is_shown_with_its_code_and_expiry() {
        let c = sample();
        let r = CarrierRegistration {
            carrier: "telco".into(),
            state: domain::carrier::RegistrationState::Registered,
            last_status: Some(200),
            expires_ms: Some(61_000),
            updated_ms: 1_000,
        };
        let t = table(&[(c.clone(), "up", None, Some(&r))], 1_000);
        assert!(t.contains("registered (200), expires in 60 s"), "{t}");
        let j = public_json(&c, "up", None, Some(&r), 1_000).to_string();
        assert!(j.contains("\"Registration\":\"registered\""), "{j}");
        assert_eq!(registration(None, 0), "-");
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let mut c = Carrier::new("x");
        let err = CarrierFields {
            addresses: vec!["127.0.0.1:5060".into()],
            transport: Some("sctp".into()),
            ..Default::default()
        }
        .apply(&mut c)
        .expect_err("bad transport");
        assert!(bad(err).to_string().starts_with("--transport:"));
    }
}

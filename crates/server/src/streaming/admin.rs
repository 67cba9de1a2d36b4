//! `voice-connector admin streaming set|get|clear`: where a voice connector's calls are
//! streamed (a WebSocket URL, whether the consumer may talk back, where status events go),
//! or the default for every connector without its own (`--default`). Kept in the database
//! every node reads. A call streams only while its connector's streaming configuration
//! (PutVoiceConnectorStreamingConfiguration) is not Disabled. Bad input is an
//! [`admin::BadInput`](crate::admin::BadInput) error, which `main` turns into exit code 2.

use clap::{Args, Subcommand};
use store::{DEFAULT_TARGET, Repository as _, StreamTarget, StreamingRepository as _};

use crate::admin::BadInput;
use crate::config::Settings;

/// Whose target: a connector's, or the default.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Whose {
    /// The voice connector's id.
    pub vc_id: Option<String>,
    /// The default for every connector without a target of its own.
    #[arg(long)]
    pub default: bool,
}

#[derive(Debug, Subcommand)]
pub enum StreamingCommand {
    /// Stream a connector's calls (or, with --default, every connector's) to a WebSocket,
    /// e.g. `set abcdef1ghij2klmno3pqr4 --url ws://10.0.0.5:8765/calls`.
    Set {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        whose: Whose,
        /// `ws://HOST[:PORT][/PATH]` or `wss://…` of the consumer.
        #[arg(long)]
        url: String,
        /// Play the audio the consumer sends back to the caller.
        #[arg(long)]
        bidirectional: bool,
        /// `http[s]://HOST[:PORT][/PATH]` that streaming status events are POSTed to (https
        /// and wss:// trust the system's CAs and --sma-ca-file's).
        #[arg(long)]
        notify_url: Option<String>,
    },
    /// Show the target (as JSON).
    Get {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        whose: Whose,
    },
    /// Remove the target (a connector falls back to the default).
    Clear {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        whose: Whose,
    },
}

/// The WebSocket URL's problem, if any.
pub fn check_ws_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| format!("--url {url} must start with ws:// or wss://"))?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || url.contains(char::is_whitespace) {
        return Err(format!("--url {url} has no usable host"));
    }
    Ok(())
}

/// Runs one `admin streaming` command.
pub async fn streaming(cmd: StreamingCommand) -> anyhow::Result<()> {
    let (settings, whose) = match &cmd {
        StreamingCommand::Set {
            settings, whose, ..
        }
        | StreamingCommand::Get { settings, whose }
        | StreamingCommand::Clear { settings, whose } => (settings, whose),
    };
    let id = match (&whose.vc_id, whose.default) {
        (Some(id), false) => id.clone(),
        _ => DEFAULT_TARGET.to_string(),
    };
    if let StreamingCommand::Set {
        url, notify_url, ..
    } = &cmd
    {
        check_ws_url(url).map_err(BadInput)?;
        if let Some(n) = notify_url {
            super::notify::HttpUrl::parse(n).map_err(|e| BadInput(format!("--notify-url {e}")))?;
        }
    }
    let repo = crate::serve::open_store(&settings.resolve()?).await?;
    if id != DEFAULT_TARGET && repo.get_voice_connector(&id).await?.is_none() {
        return Err(BadInput(format!("VC_ID: no voice connector {id}")).into());
    }
    let label = if id == DEFAULT_TARGET {
        "the default".to_string()
    } else {
        format!("voice connector {id}")
    };
    match cmd {
        StreamingCommand::Set {
            url,
            bidirectional,
            notify_url,
            ..
        } => {
            let target = StreamTarget {
                url,
                bidirectional,
                notify_url,
            };
            let now = domain::timestamp::now_millis();
            repo.put_stream_target(&id, &target, now).await?;
            println!("streaming target of {label} set to {}", target.url);
        }
        StreamingCommand::Get { .. } => match repo.get_stream_target(&id).await? {
            Some(t) => println!(
                "{}",
                serde_json::json!({
                    "voiceConnectorId": if id == DEFAULT_TARGET { None } else { Some(&id) },
                    "url": t.url,
                    "bidirectional": t.bidirectional,
                    "notifyUrl": t.notify_url,
                })
            ),
            None => return Err(BadInput(format!("{label} has no streaming target")).into()),
        },
        StreamingCommand::Clear { .. } => {
            if !repo.delete_stream_target(&id).await? {
                return Err(BadInput(format!("{label} has no streaming target")).into());
            }
            println!("streaming target of {label} removed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_are_checked() {
        assert!(check_ws_url("ws://127.0.0.1:8765/calls").is_ok());
        assert!(check_ws_url("http://x").unwrap_err().contains("ws://"));
        assert!(check_ws_url("ws:///x").unwrap_err().contains("host"));
        assert!(check_ws_url("wss://streams.example/calls").is_ok());
        assert!(check_ws_url("wss://user@x").unwrap_err().contains("host"));
    }
}

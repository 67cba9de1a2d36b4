//! `voice-connector admin functions add|list|remove`: the function registry (issue 13).
//! A SIP media application names its function by Lambda ARN, as on AWS; the registry says
//! which http:// or https:// endpoint runs that ARN here, and how to call it (`webhook`:
//! POST the event JSON; `invoke`: the Lambda Invoke API, for a Lambda emulator). Kept in the
//! database every node reads. Bad input is an [`admin::BadInput`](crate::admin::BadInput) error,
//! which `main` turns into exit code 2, naming the argument.

use std::fmt::Write as _;

use clap::Subcommand;
use domain::DomainError;
use domain::sma::{FunctionEndpoint, FunctionStyle};
use store::SmaRepository as _;

use crate::admin::BadInput;
use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum FunctionCommand {
    /// Register (or re-point) the endpoint that runs a Lambda ARN, e.g.
    /// `add arn:aws:lambda:us-east-1:123456789012:function:ivr http://127.0.0.1:9000/ivr`.
    Add {
        #[command(flatten)]
        settings: Settings,
        /// The function's ARN, as SIP media applications name it.
        arn: String,
        /// `http://` or `https://HOST[:PORT][/PATH]` of the endpoint (https is verified
        /// against the system's CAs and `serve --sma-ca-file`).
        url: String,
        /// webhook (POST the event, the body is the answer) or invoke (the Lambda Invoke
        /// API under URL) [default: webhook].
        #[arg(long, default_value = "webhook")]
        style: String,
    },
    /// Show every registered function.
    List {
        #[command(flatten)]
        settings: Settings,
        /// One JSON document per function instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a function's registration (applications naming it then fail their calls).
    Remove {
        #[command(flatten)]
        settings: Settings,
        arn: String,
    },
}

/// `DomainError::Invalid` of `FunctionEndpoint` as the argument the operator typed.
fn bad(e: DomainError) -> anyhow::Error {
    crate::admin::bad_named(e, |field| {
        match field {
            "arn" => "ARN",
            "url" => "URL",
            "style" => "--style",
            other => other,
        }
        .to_string()
    })
}

/// Runs one `admin functions` command.
pub async fn functions(cmd: FunctionCommand) -> anyhow::Result<()> {
    match cmd {
        FunctionCommand::Add {
            settings,
            arn,
            url,
            style,
        } => {
            let f = FunctionEndpoint {
                lambda_arn: arn,
                url,
                style: style.parse::<FunctionStyle>().map_err(bad)?,
            };
            f.validate().map_err(bad)?;
            let repo = crate::serve::open_store(&settings.resolve()?).await?;
            let replaced = repo.function(&f.lambda_arn).await?.is_some();
            repo.put_function(&f).await?;
            let verb = if replaced { "updated" } else { "added" };
            println!(
                "{verb} function {} -> {} ({})",
                f.lambda_arn,
                f.url,
                f.style.as_str()
            );
        }
        FunctionCommand::List { settings, json } => {
            let repo = crate::serve::open_store(&settings.resolve()?).await?;
            let all = repo.list_functions().await?;
            if json {
                for f in &all {
                    println!("{}", serde_json::to_string(f)?);
                }
            } else {
                print!("{}", table(&all));
            }
        }
        FunctionCommand::Remove { settings, arn } => {
            let repo = crate::serve::open_store(&settings.resolve()?).await?;
            if !repo.delete_function(&arn).await? {
                return Err(BadInput(format!("ARN: no function {arn} is registered")).into());
            }
            println!("removed function {arn}");
        }
    }
    Ok(())
}

/// `ARN STYLE URL`, one line per function, columns padded to the longest cell.
fn table(all: &[FunctionEndpoint]) -> String {
    let width = all
        .iter()
        .map(|f| f.lambda_arn.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let mut out = String::new();
    let _ = writeln!(out, "{:width$}  {:7}  URL", "ARN", "STYLE");
    for f in all {
        let _ = writeln!(
            out,
            "{:width$}  {:7}  {}",
            f.lambda_arn,
            f.style.as_str(),
            f.url
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines_up_columns() {
        let f = |arn: &str, style| FunctionEndpoint {
            lambda_arn: arn.into(),
            url: "http://127.0.0.1:9000/".into(),
            style,
        };
        let t = table(&[
            f(
                "arn:aws:lambda:us-east-1:123456789012:function:a",
                FunctionStyle::Webhook,
            ),
            f(
                "arn:aws:lambda:us-east-1:123456789012:function:bb",
                FunctionStyle::Invoke,
            ),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[0].find("STYLE").unwrap();
        assert_eq!(&lines[1][col..col + 7], "webhook");
        assert_eq!(&lines[2][col..col + 6], "invoke");
    }

    #[test]
    fn bad_input_names_the_argument() {
        let e = bad(DomainError::invalid("url", "nope")).to_string();
        assert_eq!(e, "URL: nope");
        let e = bad("soap".parse::<FunctionStyle>().unwrap_err()).to_string();
        assert!(e.starts_with("--style: "), "{e}");
    }
}

//! Speak and SpeakAndGetDigits through a local text-to-speech program (`--tts-command`,
//! espeak-ng or one taking its arguments): the text goes as an argument, never through a
//! shell; the program writes a WAV to stdout, decoded like any prompt. AWS's
//! `LanguageCode` (`en-US`) picks the voice (`-v en-us`), `TextType` `ssml` adds `-m`;
//! `Engine` and `VoiceId` (Polly's) have no counterpart and are ignored.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use domain::sma::action::SpeechParameters;

/// Longest text spoken (AWS's limit for Speak's Text).
pub const MAX_TEXT: usize = 6000;
/// How long the program may take.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Most audio read from it (a few minutes of speech).
const MAX_WAV: usize = 32 * 1024 * 1024;

/// The arguments for `params`, or why it cannot be spoken.
pub fn arguments(params: &SpeechParameters) -> Result<Vec<String>, String> {
    let text = params.text.trim();
    if text.is_empty() {
        return Err("Text is empty".into());
    }
    if text.len() > MAX_TEXT {
        return Err(format!("Text is longer than {MAX_TEXT} characters"));
    }
    let mut args = vec!["--stdout".to_string()];
    if let Some(lang) = &params.language_code {
        let ok = !lang.is_empty()
            && lang.len() <= 16
            && lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!("LanguageCode {lang:?} is not a language tag"));
        }
        args.push("-v".into());
        args.push(lang.to_ascii_lowercase());
    }
    if params
        .text_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("ssml"))
    {
        args.push("-m".into());
    }
    // After `--`, the text cannot be read as an option.
    args.push("--".into());
    args.push(text.to_string());
    Ok(args)
}

/// Speaks `params` with `program`.
pub async fn speak(program: &Path, params: &SpeechParameters) -> Result<codec::wav::Pcm, String> {
    let args = arguments(params)?;
    let child = tokio::process::Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("text-to-speech program {}: {e}", program.display()))?;
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .map_err(|_| format!("text-to-speech took longer than {} s", DEADLINE.as_secs()))?
        .map_err(|e| format!("text-to-speech program: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: String = err.trim().chars().take(200).collect();
        return Err(format!("text-to-speech failed ({}): {err}", out.status));
    }
    if out.stdout.len() > MAX_WAV {
        return Err("text-to-speech gave more audio than a prompt may have".into());
    }
    codec::wav::decode(&out.stdout, 600).map_err(|e| format!("text-to-speech output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str, lang: Option<&str>, ssml: bool) -> SpeechParameters {
        SpeechParameters {
            text: text.into(),
            engine: Some("neural".into()),
            language_code: lang.map(str::to_string),
            text_type: ssml.then(|| "ssml".to_string()),
            voice_id: Some("Joanna".into()),
        }
    }

    #[test]
    fn text_is_an_argument_after_the_options() {
        let a = arguments(&params("-w /etc/passwd", Some("en-US"), true)).unwrap();
        assert_eq!(a, ["--stdout", "-v", "en-us", "-m", "--", "-w /etc/passwd"]);
        assert!(arguments(&params("  ", None, false)).is_err());
        assert!(arguments(&params("hi", Some("en;rm"), false)).is_err());
        assert!(arguments(&params(&"a".repeat(MAX_TEXT + 1), None, false)).is_err());
    }
}

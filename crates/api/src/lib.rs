//! AWS-compatible REST API (chime-sdk-voice, chime-sdk-meetings) with SigV4.

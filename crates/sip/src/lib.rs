//! SIP message model, parser, printer, transactions, dialogs and digest auth (sans-IO).
#![forbid(unsafe_code)]

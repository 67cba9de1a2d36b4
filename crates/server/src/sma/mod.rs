//! Programmable calls at the edge (issue 13): the pieces of a SIP media application's call
//! that do I/O. The event/action model itself is sans-IO in `domain::sma`; the SIP
//! signalling of a call is the call flow's (built on these).
//!
//! - [`call`]: one task per call (transaction): the sans-IO `domain::sma::flow::CallFlow`
//!   driven: invocations, prompts loaded, join tokens looked up, legs asked of the SIP edge.
//! - [`invoke`]: calls the function a Lambda ARN is registered to (`admin functions`), as a
//!   webhook or through the Lambda Invoke API, with a deadline and one retry.
//! - [`message_log`]: the events and answers of an application whose logging
//!   configuration asks for message logs.
//! - [`objects`]: prompts read and recordings written, in an S3-compatible server or the
//!   data directory; [`s3`]: its endpoint, names and SigV4 signing, without I/O.
//! - [`prompts`]: WAV prompts read through `objects`, decoded once, in a bounded cache.
//! - [`requests`]: the queue of CreateSipMediaApplicationCall and
//!   UpdateSipMediaApplicationCall requests, taken out and handed to the SIP edge.

pub mod call;
pub mod invoke;
pub mod message_log;
pub mod objects;
pub mod prompts;
pub mod record;
pub mod requests;
pub mod s3;
pub mod speech;
pub mod tls;

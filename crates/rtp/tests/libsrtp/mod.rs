//! Test-only FFI binding to libsrtp2 (Debian `libsrtp2-dev`), the reference peer for
//! interop tests and benchmarks. Declarations follow `<srtp2/srtp.h>` of libsrtp 2.5.
#![allow(dead_code, unsafe_code)]

use rtp::srtp::SrtpSuite;
use std::os::raw::{c_int, c_uchar, c_uint, c_ulong, c_void};
use std::sync::Once;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CryptoPolicy {
    cipher_type: u32,
    cipher_key_len: c_int,
    auth_type: u32,
    auth_key_len: c_int,
    auth_tag_len: c_int,
    sec_serv: c_int,
}

#[repr(C)]
struct SsrcSpec {
    kind: c_int,
    value: c_uint,
}

#[repr(C)]
struct Policy {
    ssrc: SsrcSpec,
    rtp: CryptoPolicy,
    rtcp: CryptoPolicy,
    key: *mut c_uchar,
    keys: *mut *mut c_void,
    num_master_keys: c_ulong,
    deprecated_ekt: *mut c_void,
    window_size: c_ulong,
    allow_repeat_tx: c_int,
    enc_xtn_hdr: *mut c_int,
    enc_xtn_hdr_count: c_int,
    next: *mut Policy,
}

const SSRC_ANY_INBOUND: c_int = 2;
const SSRC_ANY_OUTBOUND: c_int = 3;
/// SRTP_MAX_TRAILER_LEN: 16-octet tag plus the largest MKI.
const MAX_TRAILER: usize = 16 + 128;

#[link(name = "srtp2")]
unsafe extern "C" {
    fn srtp_init() -> c_int;
    fn srtp_create(session: *mut *mut c_void, policy: *const Policy) -> c_int;
    fn srtp_dealloc(session: *mut c_void) -> c_int;
    fn srtp_protect(ctx: *mut c_void, hdr: *mut c_void, len: *mut c_int) -> c_int;
    fn srtp_unprotect(ctx: *mut c_void, hdr: *mut c_void, len: *mut c_int) -> c_int;
    fn srtp_protect_rtcp(ctx: *mut c_void, hdr: *mut c_void, len: *mut c_int) -> c_int;
    fn srtp_unprotect_rtcp(ctx: *mut c_void, hdr: *mut c_void, len: *mut c_int) -> c_int;
    fn srtp_crypto_policy_set_rtp_default(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_gcm_256_16_auth(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_gcm_256_8_auth(p: *mut CryptoPolicy);
}

/// libsrtp error status (`srtp_err_status_t`): 7 = auth_fail, 9 = replay_fail,
/// 10 = replay_old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpStatus(pub i32);

/// Every suite libsrtp2 2.5 implements, i.e. all six.
pub const SUITES: [SrtpSuite; 6] = SrtpSuite::ALL;

/// One libsrtp session for one direction.
pub struct LibSrtp {
    session: *mut c_void,
}

impl LibSrtp {
    /// A session that protects (`outbound`) or unprotects any SSRC with `key || salt`.
    pub fn new(suite: SrtpSuite, key: &[u8], salt: &[u8], outbound: bool) -> Self {
        static INIT: Once = Once::new();
        INIT.call_once(|| assert_eq!(unsafe { srtp_init() }, 0));
        let mut rtp = CryptoPolicy::default();
        let mut rtcp = CryptoPolicy::default();
        // SAFETY: the setters only write the struct they are given.
        unsafe {
            match suite {
                SrtpSuite::AesCm128HmacSha1_80 => {
                    srtp_crypto_policy_set_rtp_default(&mut rtp);
                    srtp_crypto_policy_set_rtp_default(&mut rtcp);
                }
                SrtpSuite::AesCm128HmacSha1_32 => {
                    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&mut rtp);
                    srtp_crypto_policy_set_rtp_default(&mut rtcp);
                }
                SrtpSuite::Aes256CmHmacSha1_80 => {
                    srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&mut rtp);
                    srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&mut rtcp);
                }
                SrtpSuite::Aes256CmHmacSha1_32 => {
                    srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32(&mut rtp);
                    srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&mut rtcp);
                }
                SrtpSuite::AeadAes256Gcm => {
                    srtp_crypto_policy_set_aes_gcm_256_16_auth(&mut rtp);
                    srtp_crypto_policy_set_aes_gcm_256_16_auth(&mut rtcp);
                }
                SrtpSuite::AeadAes256Gcm8 => {
                    srtp_crypto_policy_set_aes_gcm_256_8_auth(&mut rtp);
                    srtp_crypto_policy_set_aes_gcm_256_8_auth(&mut rtcp);
                }
            }
        }
        let mut material = [key, salt].concat();
        let policy = Policy {
            ssrc: SsrcSpec {
                kind: if outbound {
                    SSRC_ANY_OUTBOUND
                } else {
                    SSRC_ANY_INBOUND
                },
                value: 0,
            },
            rtp,
            rtcp,
            key: material.as_mut_ptr(),
            keys: std::ptr::null_mut(),
            num_master_keys: 0,
            deprecated_ekt: std::ptr::null_mut(),
            window_size: 128,
            allow_repeat_tx: 0,
            enc_xtn_hdr: std::ptr::null_mut(),
            enc_xtn_hdr_count: 0,
            next: std::ptr::null_mut(),
        };
        let mut session = std::ptr::null_mut();
        // SAFETY: policy and key outlive the call; libsrtp derives and copies the keys.
        let status = unsafe { srtp_create(&mut session, &policy) };
        assert_eq!(status, 0, "srtp_create failed for {suite}");
        Self { session }
    }

    fn run(
        &mut self,
        f: unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int) -> c_int,
        pkt: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SrtpStatus> {
        out.clear();
        out.extend_from_slice(pkt);
        out.resize(pkt.len() + MAX_TRAILER, 0);
        let mut len = pkt.len() as c_int;
        // SAFETY: `out` holds the packet plus room for the largest trailer libsrtp writes.
        let status = unsafe { f(self.session, out.as_mut_ptr().cast(), &mut len) };
        if status != 0 {
            out.clear();
            return Err(SrtpStatus(status));
        }
        out.truncate(len as usize);
        Ok(())
    }

    pub fn protect_rtp(&mut self, pkt: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpStatus> {
        self.run(srtp_protect, pkt, out)
    }
    pub fn unprotect_rtp(&mut self, pkt: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpStatus> {
        self.run(srtp_unprotect, pkt, out)
    }
    pub fn protect_rtcp(&mut self, pkt: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpStatus> {
        self.run(srtp_protect_rtcp, pkt, out)
    }
    pub fn unprotect_rtcp(&mut self, pkt: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpStatus> {
        self.run(srtp_unprotect_rtcp, pkt, out)
    }
}

impl Drop for LibSrtp {
    fn drop(&mut self) {
        // SAFETY: session came from srtp_create and is freed once.
        unsafe {
            srtp_dealloc(self.session);
        }
    }
}

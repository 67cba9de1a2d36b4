//! Key derivation (RFC 3711 §4.3, RFC 6188 §3, RFC 7714 §11) and the per-packet transforms:
//! AES-CM + HMAC-SHA1 (RFC 3711 §4.1.1, §4.2) and AES-256-GCM (RFC 7714 §8, §9).
//!
//! Keyed state (AES round keys, the HMAC inner/outer SHA-1 states, the GHASH key) is
//! computed once per session key; per packet we only clone the small HMAC/GHASH states.

use aes::cipher::{
    BlockEncrypt, BlockSizeUser, InnerIvInit, KeyInit, StreamCipherCore,
    generic_array::GenericArray,
};
use aes::{Aes128Enc, Aes256Enc};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::AeadInPlace;
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// RFC 3711 §4.3.2 key derivation labels.
pub(crate) mod label {
    pub(crate) const RTP_ENCRYPTION: u8 = 0x00;
    pub(crate) const RTP_AUTH: u8 = 0x01;
    pub(crate) const RTP_SALT: u8 = 0x02;
    pub(crate) const RTCP_ENCRYPTION: u8 = 0x03;
    pub(crate) const RTCP_AUTH: u8 = 0x04;
    pub(crate) const RTCP_SALT: u8 = 0x05;
}

/// Length of the HMAC-SHA1 session authentication key (RFC 3711 §4.2.1, n_a = 160).
pub(crate) const AUTH_KEY_LEN: usize = 20;

/// The AES-CM PRF of RFC 3711 §4.3.3 with key derivation rate 0 (so `r = 0`):
/// `x = label << 48 XOR master_salt`, output = AES-CM keystream from IV `x * 2^16`.
///
/// `master_key` is 16 (AES_CM PRF) or 32 (AES_256_CM_PRF, RFC 6188 §3) octets. A 12-octet
/// master salt (RFC 7714) is multiplied by 2^16 first, i.e. followed by two zero octets
/// (RFC 7714 §11, erratum 4938).
pub(crate) fn derive(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    let n = master_salt.len().min(14);
    iv[..n].copy_from_slice(&master_salt[..n]);
    iv[7] ^= label;
    out.fill(0);
    let iv = GenericArray::from(iv);
    match master_key.len() {
        16 => {
            let aes = Aes128Enc::new(GenericArray::from_slice(master_key));
            ctr::CtrCore::<&Aes128Enc, ctr::flavors::Ctr128BE>::inner_iv_init(&aes, &iv)
                .apply_keystream_partial(out.into());
        }
        _ => {
            let aes = Aes256Enc::new(GenericArray::from_slice(master_key));
            ctr::CtrCore::<&Aes256Enc, ctr::flavors::Ctr128BE>::inner_iv_init(&aes, &iv)
                .apply_keystream_partial(out.into());
        }
    }
}

/// AES in counter mode for a 16-octet session key (RFC 3711 §4.1.1) or a 32-octet one
/// (RFC 6188 §4).
#[derive(Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per session, kept inline for locality on the per-packet path"
)]
pub(crate) enum CmCipher {
    Aes128(Aes128Enc),
    Aes256(Aes256Enc),
}

impl CmCipher {
    fn new(key: &[u8]) -> Self {
        if key.len() == 16 {
            Self::Aes128(Aes128Enc::new(GenericArray::from_slice(key)))
        } else {
            Self::Aes256(Aes256Enc::new(GenericArray::from_slice(key)))
        }
    }

    /// XORs the keystream starting at counter block `iv` into `data`.
    pub(crate) fn apply(&self, iv: [u8; 16], data: &mut [u8]) {
        let iv = GenericArray::from(iv);
        match self {
            Self::Aes128(aes) => {
                ctr::CtrCore::<&Aes128Enc, ctr::flavors::Ctr128BE>::inner_iv_init(aes, &iv)
                    .apply_keystream_partial(data.into());
            }
            Self::Aes256(aes) => {
                ctr::CtrCore::<&Aes256Enc, ctr::flavors::Ctr128BE>::inner_iv_init(aes, &iv)
                    .apply_keystream_partial(data.into());
            }
        }
    }
}

/// AES-CM encryption with HMAC-SHA1 authentication (RFC 3711 §4.1.1, §4.2.1).
#[derive(Clone)]
pub(crate) struct CmTransform {
    pub(crate) cipher: CmCipher,
    pub(crate) salt: [u8; 14],
    mac: Hmac<Sha1>,
    pub(crate) tag_len: usize,
}

impl CmTransform {
    /// Derives the session keys for one of SRTP (`rtcp = false`) or SRTCP.
    pub(crate) fn derive(
        master_key: &[u8],
        master_salt: &[u8],
        rtcp: bool,
        tag_len: usize,
    ) -> Self {
        let (l_enc, l_auth, l_salt) = if rtcp {
            (label::RTCP_ENCRYPTION, label::RTCP_AUTH, label::RTCP_SALT)
        } else {
            (label::RTP_ENCRYPTION, label::RTP_AUTH, label::RTP_SALT)
        };
        let mut key = Zeroizing::new([0u8; 32]);
        let key = &mut key[..master_key.len()];
        derive(master_key, master_salt, l_enc, key);
        let mut auth = Zeroizing::new([0u8; AUTH_KEY_LEN]);
        derive(master_key, master_salt, l_auth, &mut auth[..]);
        let mut salt = [0u8; 14];
        derive(master_key, master_salt, l_salt, &mut salt);
        Self::from_session_keys(key, &auth[..], salt, tag_len)
    }

    pub(crate) fn from_session_keys(
        key: &[u8],
        auth: &[u8],
        salt: [u8; 14],
        tag_len: usize,
    ) -> Self {
        // HMAC pads keys shorter than the 64-octet SHA-1 block with zeros (RFC 2104 §2),
        // so keying with the zero-padded block is the same MAC without a fallible call.
        let mut block = Zeroizing::new([0u8; 64]);
        let n = auth.len().min(64);
        block[..n].copy_from_slice(&auth[..n]);
        let mac = <Hmac<Sha1> as KeyInit>::new(GenericArray::from_slice(&block[..]));
        Self {
            cipher: CmCipher::new(key),
            salt,
            mac,
            tag_len,
        }
    }

    /// IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16) (RFC 3711 §4.1.1).
    pub(crate) fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *d ^= s;
        }
        for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *d ^= s;
        }
        iv
    }

    /// HMAC-SHA1 over `parts`, full 20 octets (RFC 3711 §4.2.1).
    pub(crate) fn mac(&self, a: &[u8], b: &[u8]) -> [u8; 20] {
        let mut mac = self.mac.clone();
        mac.update(a);
        mac.update(b);
        mac.finalize().into_bytes().into()
    }

    /// Constant-time comparison of the first `tag_len` octets of the MAC with `tag`.
    pub(crate) fn verify(&self, a: &[u8], b: &[u8], tag: &[u8]) -> bool {
        let full = self.mac(a, b);
        full[..self.tag_len].ct_eq(tag).into()
    }
}

/// AEAD_AES_256_GCM with a 16-octet (RFC 7714 §14.2) or 8-octet (RFC 7714 §14.2,
/// `AEAD_AES_256_GCM_8`) tag.
///
/// The 16-octet tag goes through `aes-gcm`. That crate refuses tags shorter than 12
/// octets, so the 8-octet variant seals with `aes-gcm` and truncates the tag (NIST SP
/// 800-38D §5.2.1.2: a shorter tag is the leftmost bits), and opens with the same GCM
/// construction built from the `ghash` and `ctr` primitives that `aes-gcm` itself uses.
#[derive(Clone)]
pub(crate) struct GcmTransform {
    aead: Aes256Gcm,
    aes: Aes256Enc,
    ghash: GHash,
    pub(crate) salt: [u8; 12],
    pub(crate) tag_len: usize,
}

/// The GCM authentication step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GcmAuthFailed;

impl GcmTransform {
    pub(crate) fn derive(
        master_key: &[u8],
        master_salt: &[u8],
        rtcp: bool,
        tag_len: usize,
    ) -> Self {
        let (l_enc, l_salt) = if rtcp {
            (label::RTCP_ENCRYPTION, label::RTCP_SALT)
        } else {
            (label::RTP_ENCRYPTION, label::RTP_SALT)
        };
        let mut key = Zeroizing::new([0u8; 32]);
        derive(master_key, master_salt, l_enc, &mut key[..]);
        let mut salt = [0u8; 12];
        derive(master_key, master_salt, l_salt, &mut salt);
        Self::from_session_keys(&key[..], salt, tag_len)
    }

    pub(crate) fn from_session_keys(key: &[u8], salt: [u8; 12], tag_len: usize) -> Self {
        let key = GenericArray::from_slice(key);
        let aes = Aes256Enc::new(key);
        let mut h = GenericArray::default();
        aes.encrypt_block(&mut h);
        Self {
            aead: Aes256Gcm::new(key),
            ghash: GHash::new(&h),
            aes,
            salt,
            tag_len,
        }
    }

    /// RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt; §9.1 for SRTCP:
    /// (0x0000 || SSRC || 0x0000 || 0 || SRTCP index) XOR salt. `tail` carries
    /// ROC||SEQ or 0x0000||index as the low 48 bits.
    pub(crate) fn iv(&self, ssrc: u32, tail: u64) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..12].copy_from_slice(&tail.to_be_bytes()[2..]);
        for (d, s) in iv.iter_mut().zip(self.salt) {
            *d ^= s;
        }
        iv
    }

    /// Encrypts `data` in place and returns the full 16-octet tag (the caller keeps the
    /// first `tag_len` octets).
    pub(crate) fn seal(&self, iv: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        // aes-gcm only refuses inputs above 2^36 octets; RTP packets are far smaller.
        match self
            .aead
            .encrypt_in_place_detached(GenericArray::from_slice(iv), aad, data)
        {
            Ok(tag) => tag.into(),
            Err(_) => self.seal_manual(iv, aad, data),
        }
    }

    /// Verifies `tag` over `aad` and `data` and decrypts `data` in place.
    pub(crate) fn open(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), GcmAuthFailed> {
        if tag.len() == 16 {
            self.aead
                .decrypt_in_place_detached(
                    GenericArray::from_slice(iv),
                    aad,
                    data,
                    GenericArray::from_slice(tag),
                )
                .map_err(|_| GcmAuthFailed)
        } else {
            self.open_truncated(iv, aad, data, tag)
        }
    }

    fn counter(
        &self,
        iv: &[u8; 12],
    ) -> (ctr::CtrCore<&Aes256Enc, ctr::flavors::Ctr32BE>, [u8; 16]) {
        let mut j0 = GenericArray::<u8, <Aes256Enc as BlockSizeUser>::BlockSize>::default();
        j0[..12].copy_from_slice(iv);
        j0[15] = 1;
        let mut ctr =
            ctr::CtrCore::<&Aes256Enc, ctr::flavors::Ctr32BE>::inner_iv_init(&self.aes, &j0);
        let mut mask = GenericArray::default();
        ctr.write_keystream_block(&mut mask);
        (ctr, mask.into())
    }

    fn tag(&self, mask: [u8; 16], aad: &[u8], ct: &[u8]) -> [u8; 16] {
        let mut gh = self.ghash.clone();
        gh.update_padded(aad);
        gh.update_padded(ct);
        let mut lens = ghash::Block::default();
        lens[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        lens[8..].copy_from_slice(&((ct.len() as u64) * 8).to_be_bytes());
        gh.update(&[lens]);
        let mut tag: [u8; 16] = gh.finalize().into();
        for (t, m) in tag.iter_mut().zip(mask) {
            *t ^= m;
        }
        tag
    }

    fn seal_manual(&self, iv: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let (ctr, mask) = self.counter(iv);
        ctr.apply_keystream_partial(data.into());
        self.tag(mask, aad, data)
    }

    /// GCM decryption with a truncated tag (NIST SP 800-38D §7.2).
    fn open_truncated(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), GcmAuthFailed> {
        let (ctr, mask) = self.counter(iv);
        let full = self.tag(mask, aad, data);
        let ok: bool = full.get(..tag.len()).is_some_and(|t| t.ct_eq(tag).into());
        if !ok {
            return Err(GcmAuthFailed);
        }
        ctr.apply_keystream_partial(data.into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_gcm_matches_aes_gcm() {
        let t = GcmTransform::from_session_keys(&[7u8; 32], [9u8; 12], 16);
        for len in [0usize, 1, 15, 16, 17, 160, 1200] {
            let iv = t.iv(0x1234_5678, 0xabcd_0001 + len as u64);
            let aad: Vec<u8> = (0..(len % 23 + 12) as u8).collect();
            let plain: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let mut a = plain.clone();
            let tag_a = t.seal(&iv, &aad, &mut a);
            let mut b = plain.clone();
            let tag_b = t.seal_manual(&iv, &aad, &mut b);
            assert_eq!(a, b);
            assert_eq!(tag_a, tag_b);
            // Truncated open accepts the 8-octet prefix and decrypts.
            let mut c = a.clone();
            t.open_truncated(&iv, &aad, &mut c, &tag_a[..8]).unwrap();
            assert_eq!(c, plain);
            // And refuses a flipped tag bit without touching the data.
            let mut bad = tag_a;
            bad[3] ^= 0x10;
            let mut d = a.clone();
            assert_eq!(
                t.open_truncated(&iv, &aad, &mut d, &bad[..8]),
                Err(GcmAuthFailed)
            );
            assert_eq!(d, a);
        }
    }
}

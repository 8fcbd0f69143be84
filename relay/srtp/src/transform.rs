//! The per-packet cryptography of one session (SRTP or SRTCP): AES-CM with
//! HMAC-SHA1 (RFC 3711) or AES-GCM (RFC 7714), keys scheduled once.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes_gcm::aead::consts::U16;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::{AeadInPlace, Aes128Gcm, Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::SrtpError;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// GCM's tag length (RFC 7714 uses the 16-byte tag).
pub(crate) const GCM_TAG: usize = 16;

/// One session's keys, ready: AES key schedule, HMAC inner and outer
/// states, GHASH key. Cloning a scheduled cipher or MAC state per packet
/// copies bytes; nothing is allocated.
#[allow(clippy::large_enum_variant)] // see `Gcm`
pub(crate) enum Transform {
    /// AES-128 counter mode with an HMAC-SHA1 tag of `tag_len` bytes.
    Cm {
        aes: aes::Aes128,
        salt: [u8; 14],
        mac: Hmac<Sha1>,
        tag_len: usize,
    },
    /// AES-GCM, 128 or 256 (RFC 7714).
    Gcm { aead: Gcm, salt: [u8; 12] },
}

/// AES-GCM with either key size: the two differ only in the key schedule.
// Inline, not boxed: a context is made once per leg, and a packet should
// not chase a pointer to reach its key schedule.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Gcm {
    A128(Aes128Gcm),
    A256(Aes256Gcm),
}

impl Gcm {
    fn encrypt_in_place_detached(
        &self,
        iv: &Nonce<aes_gcm::aead::consts::U12>,
        aad: &[u8],
        data: &mut [u8],
    ) -> aes_gcm::aead::Result<Tag<U16>> {
        match self {
            Self::A128(a) => a.encrypt_in_place_detached(iv, aad, data),
            Self::A256(a) => a.encrypt_in_place_detached(iv, aad, data),
        }
    }

    fn decrypt_in_place_detached(
        &self,
        iv: &Nonce<aes_gcm::aead::consts::U12>,
        aad: &[u8],
        data: &mut [u8],
        tag: &GenericArray<u8, U16>,
    ) -> aes_gcm::aead::Result<()> {
        match self {
            Self::A128(a) => a.decrypt_in_place_detached(iv, aad, data, tag),
            Self::A256(a) => a.decrypt_in_place_detached(iv, aad, data, tag),
        }
    }
}

impl Transform {
    /// AES-CM + HMAC-SHA1 from session keys.
    pub(crate) fn cm(key: &[u8; 16], salt: &[u8; 14], auth: &[u8; 20], tag_len: usize) -> Self {
        Self::Cm {
            aes: aes::Aes128::new(key.into()),
            salt: *salt,
            // HMAC takes keys of any length: infallible.
            mac: <Hmac<Sha1> as Mac>::new_from_slice(auth).expect("HMAC accepts any key length"),
            tag_len,
        }
    }

    /// AES-GCM from session keys (16 bytes: AES-128, 32: AES-256).
    pub(crate) fn gcm(key: &[u8], salt: &[u8; 12]) -> Self {
        let aead = if key.len() == 32 {
            Gcm::A256(Aes256Gcm::new(GenericArray::from_slice(key)))
        } else {
            Gcm::A128(Aes128Gcm::new(GenericArray::from_slice(key)))
        };
        Self::Gcm { aead, salt: *salt }
    }

    /// Bytes the tag takes.
    pub(crate) fn tag_len(&self) -> usize {
        match self {
            Self::Cm { tag_len, .. } => *tag_len,
            Self::Gcm { .. } => GCM_TAG,
        }
    }

    /// Encrypts or decrypts (the same for CM) `data` with the keystream of
    /// RFC 3711 §4.1.1: IV = salt·2^16 ⊕ SSRC·2^64 ⊕ index·2^16.
    fn cm_apply(aes: &aes::Aes128, salt: &[u8; 14], ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(salt);
        xor(&mut iv[4..8], &ssrc.to_be_bytes());
        xor(&mut iv[8..14], &index.to_be_bytes()[2..]);
        let core = ctr::CtrCore::<aes::Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(
            aes.clone(),
            &iv.into(),
        );
        let mut ks = Aes128Ctr::from_core(core);
        ks.apply_keystream(data);
    }

    /// HMAC-SHA1 of `parts` (all 20 bytes; callers truncate to the tag).
    fn hmac(mac: &Hmac<Sha1>, parts: &[&[u8]]) -> [u8; 20] {
        let mut m = mac.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// GCM IV of RFC 7714 §8.1 (SRTP: 00 00 || SSRC || ROC || SEQ, i.e.
    /// the 48-bit index) and §9.1 (SRTCP: 00 00 || SSRC || 00 00 || index).
    fn gcm_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
        let mut iv = *salt;
        xor(&mut iv[2..6], &ssrc.to_be_bytes());
        xor(&mut iv[6..12], &index.to_be_bytes()[2..]);
        iv
    }

    /// Protects an RTP packet `pkt` whose header is `hlen` bytes: encrypts
    /// the payload, writes the tag in `tag` (tag_len() bytes).
    pub(crate) fn protect_rtp(
        &self,
        pkt: &mut [u8],
        hlen: usize,
        tag: &mut [u8],
        ssrc: u32,
        index: u64,
    ) {
        match self {
            Self::Cm {
                aes,
                salt,
                mac,
                tag_len,
            } => {
                Self::cm_apply(aes, salt, ssrc, index, &mut pkt[hlen..]);
                let roc = ((index >> 16) as u32).to_be_bytes();
                tag.copy_from_slice(&Self::hmac(mac, &[pkt, &roc])[..*tag_len]);
            }
            Self::Gcm { aead, salt } => {
                let (head, body) = pkt.split_at_mut(hlen);
                let iv = Self::gcm_iv(salt, ssrc, index);
                // Fails only past GCM's 2^36-byte limit.
                let t = aead
                    .encrypt_in_place_detached(&iv.into(), head, body)
                    .expect("an RTP packet is far below GCM's length limit");
                tag.copy_from_slice(&t);
            }
        }
    }

    /// Checks `tag` over the SRTP packet `pkt` (header `hlen` bytes) and
    /// decrypts its payload. On AuthFailed `pkt` is as it was.
    pub(crate) fn unprotect_rtp(
        &self,
        pkt: &mut [u8],
        hlen: usize,
        tag: &[u8],
        ssrc: u32,
        index: u64,
    ) -> Result<(), SrtpError> {
        match self {
            Self::Cm {
                aes,
                salt,
                mac,
                tag_len,
            } => {
                let roc = ((index >> 16) as u32).to_be_bytes();
                let want = Self::hmac(mac, &[pkt, &roc]);
                if !bool::from(want[..*tag_len].ct_eq(tag)) {
                    return Err(SrtpError::AuthFailed);
                }
                Self::cm_apply(aes, salt, ssrc, index, &mut pkt[hlen..]);
                Ok(())
            }
            Self::Gcm { aead, salt } => {
                let (head, body) = pkt.split_at_mut(hlen);
                let iv = Self::gcm_iv(salt, ssrc, index);
                aead.decrypt_in_place_detached(&iv.into(), head, body, tag.into())
                    .map_err(|_| SrtpError::AuthFailed)
            }
        }
    }

    /// Protects the RTCP packet `pkt` (encrypted, E=1) with SRTCP index
    /// `index`: `trailer` receives what follows the packet, tag_len() + 4
    /// bytes (CM: E||index then tag; GCM: tag then E||index, RFC 7714 §9.3).
    pub(crate) fn protect_rtcp(&self, pkt: &mut [u8], trailer: &mut [u8], ssrc: u32, index: u32) {
        let e_index = (0x8000_0000 | index).to_be_bytes();
        match self {
            Self::Cm { aes, salt, mac, .. } => {
                Self::cm_apply(aes, salt, ssrc, index.into(), &mut pkt[8..]);
                trailer[..4].copy_from_slice(&e_index);
                let t = Self::hmac(mac, &[pkt, &e_index]);
                let n = trailer.len() - 4;
                trailer[4..].copy_from_slice(&t[..n]);
            }
            Self::Gcm { aead, salt } => {
                let (head, body) = pkt.split_at_mut(8);
                let aad = rtcp_aad(head, &e_index);
                let iv = Self::gcm_iv(salt, ssrc, index.into());
                let t = aead
                    .encrypt_in_place_detached(&iv.into(), &aad, body)
                    .expect("an RTCP packet is far below GCM's length limit");
                trailer[..GCM_TAG].copy_from_slice(&t);
                trailer[GCM_TAG..].copy_from_slice(&e_index);
            }
        }
    }

    /// Checks and decrypts an SRTCP packet. `buf` holds the whole SRTCP
    /// packet; `plen` is where the RTCP packet ends (the trailer follows).
    pub(crate) fn unprotect_rtcp(
        &self,
        buf: &mut [u8],
        plen: usize,
        ssrc: u32,
        e_index: u32,
    ) -> Result<(), SrtpError> {
        let encrypted = e_index & 0x8000_0000 != 0;
        let index = u64::from(e_index & 0x7FFF_FFFF);
        let e_bytes = e_index.to_be_bytes();
        match self {
            Self::Cm { aes, salt, mac, .. } => {
                let (signed, tag) = buf.split_at_mut(plen + 4);
                let want = Self::hmac(mac, &[signed]);
                if !bool::from(want[..tag.len()].ct_eq(tag)) {
                    return Err(SrtpError::AuthFailed);
                }
                if encrypted {
                    Self::cm_apply(aes, salt, ssrc, index, &mut signed[8..plen]);
                }
                Ok(())
            }
            Self::Gcm { aead, salt } => {
                let iv = Self::gcm_iv(salt, ssrc, index).into();
                let mut tag = [0u8; GCM_TAG];
                tag.copy_from_slice(&buf[plen..plen + GCM_TAG]);
                if encrypted {
                    let (head, rest) = buf.split_at_mut(8);
                    let aad = rtcp_aad(head, &e_bytes);
                    aead.decrypt_in_place_detached(&iv, &aad, &mut rest[..plen - 8], &tag.into())
                } else {
                    // RFC 7714 §9.2: the whole packet and E||index are the
                    // AAD. They are not adjacent on the wire (the tag sits
                    // between), so E||index is moved over the tag, whose
                    // copy is kept above.
                    buf[plen..plen + 4].copy_from_slice(&e_bytes);
                    aead.decrypt_in_place_detached(&iv, &buf[..plen + 4], &mut [], &tag.into())
                }
                .map_err(|_| SrtpError::AuthFailed)
            }
        }
    }
}

/// SRTCP GCM AAD when encrypted: the first 8 header bytes, then E||index.
fn rtcp_aad(head: &[u8], e_index: &[u8; 4]) -> [u8; 12] {
    let mut aad = [0u8; 12];
    aad[..8].copy_from_slice(head);
    aad[8..].copy_from_slice(e_index);
    aad
}

fn xor(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

//! The JD's CSA key: one Ed25519 keypair per deployment, made by whichever jobhost node asks
//! first and kept in the store (`jd:csa`), with its private half sealed: AES-256-GCM under a
//! key derived (PBKDF2-HMAC-SHA256) from the operator's secret, `jd.csa_key_secret` (the real
//! JD's `CSA_KEY_ENCRYPTION_SECRET`).
//!
//! A key stored unencrypted (by an older jobhost, or while no secret was set) is sealed at
//! the first start that has a secret. A secret that does not open the stored key is an
//! error at start, never a reason to make a new key: the nodes trust this one.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use super::{JdError, Result, from_json, now, to_json};

/// PBKDF2 rounds: the secret is typed by people, so guessing it must cost.
const ROUNDS: u32 = 210_000;

/// The JD's keypair record as stored. The private key is in `sealed`, or in `pkcs8` when no
/// secret was ever set.
#[derive(Clone, Serialize, Deserialize)]
pub struct Keypair {
    /// Always 1 (there is one keypair).
    pub id: i64,
    /// Ed25519 public key, lowercase hex.
    pub public_key: String,
    /// PKCS#8 document of the private key, hex, when stored unencrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkcs8: Option<String>,
    /// The PKCS#8 document sealed with the operator's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
    /// Creation time, Unix ms.
    pub created_ms: u64,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("id", &self.id)
            .field("public_key", &self.public_key)
            .field("sealed", &self.sealed.is_some())
            .finish_non_exhaustive()
    }
}

/// A private key sealed with AES-256-GCM; the key is PBKDF2-HMAC-SHA256(secret, salt).
#[derive(Clone, Serialize, Deserialize)]
struct Sealed {
    rounds: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

/// The JD's CSA key, unsealed: what the wsrpc channel presents to nodes.
#[derive(Clone)]
pub struct CsaKey {
    record: Keypair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for CsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsaKey")
            .field("public_key", &self.record.public_key)
            .finish_non_exhaustive()
    }
}

impl CsaKey {
    /// The record as stored (public key and creation time).
    pub fn record(&self) -> &Keypair {
        &self.record
    }

    /// The public key, 32 bytes.
    pub fn public_key(&self) -> Vec<u8> {
        hex::decode(&self.record.public_key).unwrap_or_default()
    }

    /// The private key as a PKCS#8 document (for the TLS certificate).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }
}

fn key_error(message: impl Into<String>) -> JdError {
    JdError::Key(message.into())
}

fn derive(secret: &str, salt: &[u8], rounds: u32) -> Result<LessSafeKey> {
    let mut key = [0u8; 32];
    let rounds = std::num::NonZeroU32::new(rounds).ok_or_else(|| key_error("bad rounds"))?;
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        secret.as_bytes(),
        &mut key,
    );
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| key_error("bad key"))?;
    Ok(LessSafeKey::new(unbound))
}

fn seal(pkcs8: &[u8], secret: &str) -> Result<Sealed> {
    let rng = SystemRandom::new();
    let (mut salt, mut nonce) = ([0u8; 16], [0u8; 12]);
    rng.fill(&mut salt)
        .and_then(|()| rng.fill(&mut nonce))
        .map_err(|_| key_error("no randomness"))?;
    let mut data = pkcs8.to_vec();
    derive(secret, &salt, ROUNDS)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"jobhost jd csa"),
            &mut data,
        )
        .map_err(|_| key_error("cannot seal the CSA key"))?;
    Ok(Sealed {
        rounds: ROUNDS,
        salt: hex::encode(salt),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(data),
    })
}

fn open(sealed: &Sealed, secret: &str) -> Option<Vec<u8>> {
    let salt = hex::decode(&sealed.salt).ok()?;
    let nonce: [u8; 12] = hex::decode(&sealed.nonce).ok()?.try_into().ok()?;
    let mut data = hex::decode(&sealed.ciphertext).ok()?;
    let key = derive(secret, &salt, sealed.rounds).ok()?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"jobhost jd csa"),
            &mut data,
        )
        .ok()?;
    Some(plain.to_vec())
}

fn public_of(pkcs8: &[u8]) -> Result<String> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
        .map_err(|_| key_error("the stored CSA key is not an Ed25519 PKCS#8 document"))?;
    Ok(hex::encode(pair.public_key().as_ref()))
}

/// A new keypair record, sealed with `secret` if there is one; with its private key.
pub(super) fn generate(secret: Option<&str>) -> Result<(Keypair, Vec<u8>)> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| key_error("cannot generate an Ed25519 key"))?
        .as_ref()
        .to_vec();
    let record = Keypair {
        id: 1,
        public_key: public_of(&pkcs8)?,
        pkcs8: secret.is_none().then(|| hex::encode(&pkcs8)),
        sealed: secret.map(|s| seal(&pkcs8, s)).transpose()?,
        created_ms: now(),
    };
    Ok((record, pkcs8))
}

/// What reading the stored record gave.
pub(super) enum Unsealed {
    /// The key, as stored.
    Key(CsaKey),
    /// The key was stored unencrypted; here it is, with the record sealed with the secret
    /// (to store in place of the old one).
    Migrate(CsaKey, String),
}

/// Reads the stored record `text` with `secret` (the knob's value, if set).
pub(super) fn unseal(text: &str, secret: Option<&str>) -> Result<Unsealed> {
    let record: Keypair = from_json("csa keypair", text)?;
    let pkcs8 = match (&record.sealed, &record.pkcs8, secret) {
        (Some(sealed), _, Some(secret)) => open(sealed, secret).ok_or_else(|| {
            key_error(
                "jd.csa_key_secret does not open the CSA key stored in Redis (jd:csa): \
                 set the secret it was sealed with (the key is never replaced: nodes trust it)",
            )
        })?,
        (Some(_), _, None) => {
            return Err(key_error(
                "the CSA key stored in Redis (jd:csa) is encrypted: set jd.csa_key_secret \
                 (env:NAME or file:/path; or CSA_KEY_ENCRYPTION_SECRET) to the secret it was sealed with",
            ));
        }
        (None, Some(plain), _) => {
            hex::decode(plain).map_err(|_| key_error("the stored CSA key is not hex"))?
        }
        (None, None, _) => return Err(key_error("the stored CSA key has no private key")),
    };
    if public_of(&pkcs8)? != record.public_key {
        return Err(key_error(
            "the stored CSA key's private and public halves do not match",
        ));
    }
    match (secret, record.sealed.is_none()) {
        (Some(secret), true) => {
            let mut sealed = record.clone();
            sealed.sealed = Some(seal(&pkcs8, secret)?);
            sealed.pkcs8 = None;
            let text = to_json(&sealed);
            Ok(Unsealed::Migrate(
                CsaKey {
                    record: sealed,
                    pkcs8,
                },
                text,
            ))
        }
        _ => Ok(Unsealed::Key(CsaKey { record, pkcs8 })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_with_its_secret_only() {
        let (record, pkcs8) = generate(Some("s3cret")).unwrap();
        let text = to_json(&record);
        assert!(!text.contains(&hex::encode(&pkcs8)), "no plaintext at rest");
        let Unsealed::Key(key) = unseal(&text, Some("s3cret")).unwrap() else {
            panic!("a sealed key needs no migration");
        };
        assert_eq!(key.pkcs8(), pkcs8.as_slice());
        let wrong = unseal(&text, Some("other")).err().unwrap().to_string();
        assert!(wrong.contains("jd.csa_key_secret does not open"), "{wrong}");
        let none = unseal(&text, None).err().unwrap().to_string();
        assert!(none.contains("is encrypted"), "{none}");
    }

    #[test]
    fn a_plain_key_is_sealed_once_a_secret_is_set() {
        let (record, pkcs8) = generate(None).unwrap();
        let text = to_json(&record);
        let Unsealed::Migrate(key, sealed) = unseal(&text, Some("s3cret")).unwrap() else {
            panic!("a plain key is migrated");
        };
        assert_eq!(key.record().public_key, record.public_key, "the same key");
        assert!(!sealed.contains(&hex::encode(&pkcs8)));
        assert!(matches!(
            unseal(&sealed, Some("s3cret")).unwrap(),
            Unsealed::Key(_)
        ));
    }
}

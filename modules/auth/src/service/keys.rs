//! The token-signing key: Ed25519, from configuration (`auth.signing_key`, PKCS#8 PEM) or
//! generated on first start into `<data_dir>/auth-signing-key.pem` with owner-only
//! permissions. Its `kid` is derived from the public key, so every replica configured with
//! the same key publishes the same JWKS.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::EncodingKey;
use platform::config::Secret;
use platform::identity::{Jwk, Jwks};
use sha2::{Digest, Sha256};

pub const KEY_FILE: &str = "auth-signing-key.pem";

pub struct SigningKeys {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwks: Jwks,
}

impl SigningKeys {
    /// # Errors
    /// A configured or stored key that is not an Ed25519 PKCS#8 PEM, or a key file that
    /// cannot be read or written (the message names which).
    pub fn load_or_generate(configured: &Secret, data_dir: &Path) -> Result<Self, String> {
        if !configured.is_empty() {
            let key = SigningKey::from_pkcs8_pem(configured.expose())
                .map_err(|e| format!("auth.signing_key is not an Ed25519 PKCS#8 PEM key: {e}"))?;
            return Self::from_key(&key);
        }
        let path = data_dir.join(KEY_FILE);
        let pem = platform::config::private_file(&path, || {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?;
            Ok(pem.as_bytes().to_vec())
        })?;
        let pem = String::from_utf8(pem).map_err(|_| format!("{}: not a PEM file", path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| format!("{}: not an Ed25519 PKCS#8 PEM key: {e}", path.display()))?;
        Self::from_key(&key)
    }

    fn from_key(key: &SigningKey) -> Result<Self, String> {
        let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
        let public = key.verifying_key().to_bytes();
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12]);
        let jwk = Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(public),
            kid: kid.clone(),
            use_: "sig".to_owned(),
            alg: "EdDSA".to_owned(),
        };
        Ok(Self { kid, encoding: EncodingKey::from_ed_der(der.as_bytes()), jwks: Jwks { keys: vec![jwk] } })
    }
}

//! The `SSL` block's private key, encrypted or not, as OpenSSL's `SSL_CTX_use_PrivateKey_file`
//! reads it for keepalived with the block's `password`:
//!
//! - PKCS#8 `ENCRYPTED PRIVATE KEY` (RFC 5958 / PBES2 of RFC 8018: PBKDF2 with HMAC-SHA1 or
//!   SHA-2, or scrypt; AES-CBC or (3)DES-CBC), what `openssl genpkey -aes256` and OpenSSL 3's
//!   `req -newkey` write;
//! - OpenSSL's traditional form (`Proc-Type: 4,ENCRYPTED` and `DEK-Info` headers on an
//!   `RSA PRIVATE KEY` or `EC PRIVATE KEY`: the key from the password by `EVP_BytesToKey`
//!   with MD5 and one round, AES-128/192/256-CBC or (3)DES-CBC), what OpenSSL 1.x wrote;
//! - an unencrypted key (PKCS#8, PKCS#1 or SEC1), the password unused as OpenSSL leaves it.
//!
//! Not read: PBES1 (PKCS#5 v1.5) keys, which OpenSSL 3 reads only with its legacy provider.

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

/// Why a key file cannot be used (logged under keepalived's `SSL error : Cant load key file...`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("cannot read it: {0}")]
    Read(String),
    #[error("no PEM private key in it")]
    NoKey,
    #[error("it is encrypted and the SSL block has no password")]
    NoPassword,
    #[error("wrong password, or a damaged key")]
    Decrypt,
    #[error("unsupported encryption: {0}")]
    Unsupported(String),
    #[error("scrypt parameters need {0} MiB, over the 32 MiB OpenSSL allows")]
    ScryptMemory(u64),
    #[error("PBKDF2 with {0} iterations, over the {MAX_ITERATIONS} read here")]
    Iterations(u32),
}

/// A PBKDF2 iteration count no real key has (OpenSSL writes 2048; the slowest common tools
/// use a few hundred thousand): more would stall the checkers' start for minutes.
const MAX_ITERATIONS: u32 = 10_000_000;

/// OpenSSL's default scrypt memory limit (`SCRYPT_MAX_MEM`, 32 MiB).
const SCRYPT_MAX_MEM: u64 = 32 * 1024 * 1024;

// ===== loading =====

/// The key in the PEM file at `path`, decrypted with `password` where it is encrypted.
pub fn load(path: &str, password: Option<&str>) -> Result<PrivateKeyDer<'static>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read(e.to_string()))?;
    parse(&text, password)
}

/// The first private key of a PEM text (as OpenSSL takes the first one).
pub fn parse(text: &str, password: Option<&str>) -> Result<PrivateKeyDer<'static>, KeyError> {
    let block = first_key_block(text).ok_or(KeyError::NoKey)?;
    let der = block.der()?;
    let encrypted = block
        .headers
        .iter()
        .any(|(k, v)| k == "Proc-Type" && v.split(',').nth(1).map(str::trim) == Some("ENCRYPTED"));
    if block.label == "ENCRYPTED PRIVATE KEY" {
        let password = password.ok_or(KeyError::NoPassword)?;
        return pkcs8(&der, password);
    }
    let der = if encrypted {
        let password = password.ok_or(KeyError::NoPassword)?;
        let dek = block
            .headers
            .iter()
            .find(|(k, _)| k == "DEK-Info")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| KeyError::Unsupported("Proc-Type ENCRYPTED without DEK-Info".into()))?;
        traditional(&der, dek, password)?
    } else {
        der
    };
    match block.label.as_str() {
        "PRIVATE KEY" => Ok(PrivatePkcs8KeyDer::from(der).into()),
        "RSA PRIVATE KEY" => Ok(PrivatePkcs1KeyDer::from(der).into()),
        "EC PRIVATE KEY" => Ok(PrivateSec1KeyDer::from(der).into()),
        other => Err(KeyError::Unsupported(format!("a {other} key"))),
    }
}

/// An `ENCRYPTED PRIVATE KEY`'s PKCS#8 key, after checking the KDF's cost.
fn pkcs8(der: &[u8], password: &str) -> Result<PrivateKeyDer<'static>, KeyError> {
    use pkcs8::pkcs5::{EncryptionScheme, pbes2::Kdf};
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| KeyError::Unsupported(format!("not PKCS#8 EncryptedPrivateKeyInfo: {e}")))?;
    match &info.encryption_algorithm {
        EncryptionScheme::Pbes1(_) => {
            return Err(KeyError::Unsupported(
                "PBES1 (PKCS#5 v1.5); convert it with openssl pkcs8 -topk8 -v2 aes256".into(),
            ));
        }
        EncryptionScheme::Pbes2(params) => match &params.kdf {
            Kdf::Pbkdf2(p) if p.iteration_count > MAX_ITERATIONS => {
                return Err(KeyError::Iterations(p.iteration_count));
            }
            Kdf::Scrypt(p) => {
                // scrypt's memory: 128·r·N for its table and 128·r·p for its blocks.
                let r = u64::from(p.block_size);
                let bytes = 128u64.saturating_mul(r).saturating_mul(
                    p.cost_parameter
                        .saturating_add(u64::from(p.parallelization)),
                );
                if bytes > SCRYPT_MAX_MEM {
                    return Err(KeyError::ScryptMemory(bytes / (1024 * 1024)));
                }
            }
            _ => {}
        },
        _ => {}
    }
    let doc = info.decrypt(password).map_err(|e| match e {
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm { oid }) => {
            KeyError::Unsupported(format!("algorithm {oid}"))
        }
        _ => KeyError::Decrypt,
    })?;
    // The decrypted document must itself be a PrivateKeyInfo (a wrong password that happens
    // to leave valid padding does not make one).
    pkcs8::PrivateKeyInfo::try_from(doc.as_bytes()).map_err(|_| KeyError::Decrypt)?;
    Ok(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec()).into())
}

/// OpenSSL's traditional encryption: `DEK-Info: CIPHER,IV` in hex, the key from
/// `EVP_BytesToKey(cipher, MD5, salt = the IV's first 8 bytes, password, 1 round)`.
fn traditional(der: &[u8], dek: &str, password: &str) -> Result<Vec<u8>, KeyError> {
    let (cipher, iv) = dek
        .split_once(',')
        .ok_or_else(|| KeyError::Unsupported(format!("DEK-Info {dek}")))?;
    let cipher = cipher.trim().to_ascii_uppercase();
    let iv = hex(iv.trim()).ok_or_else(|| KeyError::Unsupported(format!("DEK-Info IV {iv}")))?;
    let (key_len, iv_len) = match cipher.as_str() {
        "AES-128-CBC" => (16, 16),
        "AES-192-CBC" => (24, 16),
        "AES-256-CBC" => (32, 16),
        "DES-EDE3-CBC" => (24, 8),
        "DES-CBC" => (8, 8),
        other => return Err(KeyError::Unsupported(format!("cipher {other}"))),
    };
    if iv.len() != iv_len {
        return Err(KeyError::Unsupported(format!(
            "{cipher} with a {}-byte IV",
            iv.len()
        )));
    }
    let key = bytes_to_key(password.as_bytes(), &iv[..8], key_len);
    let mut buf = der.to_vec();
    let plain_len = match cipher.as_str() {
        "AES-128-CBC" => cbc_decrypt::<aes::Aes128>(&key, &iv, &mut buf),
        "AES-192-CBC" => cbc_decrypt::<aes::Aes192>(&key, &iv, &mut buf),
        "AES-256-CBC" => cbc_decrypt::<aes::Aes256>(&key, &iv, &mut buf),
        "DES-EDE3-CBC" => cbc_decrypt::<des::TdesEde3>(&key, &iv, &mut buf),
        _ => cbc_decrypt::<des::Des>(&key, &iv, &mut buf),
    }?;
    buf.truncate(plain_len);
    // A right password gives a DER SEQUENCE that fills the buffer; a wrong one with valid
    // padding (1 in 256) almost never does.
    if !is_der_sequence(&buf) {
        return Err(KeyError::Decrypt);
    }
    Ok(buf)
}

/// `buf` decrypted in place by `C` in CBC mode with PKCS#7 padding: the plaintext's length.
fn cbc_decrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize, KeyError>
where
    C: aes::cipher::BlockDecryptMut + aes::cipher::BlockCipher + aes::cipher::KeyInit,
{
    use aes::cipher::{BlockDecryptMut as _, KeyIvInit as _, block_padding::Pkcs7};
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| KeyError::Decrypt)?
        .decrypt_padded_mut::<Pkcs7>(buf)
        .map(<[u8]>::len)
        .map_err(|_| KeyError::Decrypt)
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one round: D1 = MD5(pass‖salt),
/// Di = MD5(Di−1‖pass‖salt), the key their concatenation's first `len` bytes.
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut key = Vec::with_capacity(len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut md = Md5::new();
        md.update(&prev);
        md.update(password);
        md.update(salt);
        prev = md.finalize().to_vec();
        key.extend_from_slice(&prev);
    }
    key.truncate(len);
    key
}

/// A DER SEQUENCE whose length is exactly the rest of `der`.
fn is_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, body) = match *first {
        n @ 0..=0x7f => (usize::from(n), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if rest.len() < n {
                return false;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        }
        _ => return false,
    };
    len == body.len()
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

// ===== PEM =====

/// One PEM block (RFC 7468, with RFC 1421's headers as OpenSSL writes them).
struct PemBlock {
    label: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl PemBlock {
    fn der(&self) -> Result<Vec<u8>, KeyError> {
        use base64ct::{Base64, Encoding};
        Base64::decode_vec(&self.body).map_err(|_| KeyError::NoKey)
    }
}

/// The first block whose label ends in `PRIVATE KEY` (text before, between and after blocks
/// is skipped, as OpenSSL skips it).
fn first_key_block(text: &str) -> Option<PemBlock> {
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            match line.split_once(':') {
                Some((k, v)) if body.is_empty() => headers.push((k.trim().into(), v.trim().into())),
                _ => body.push_str(line),
            }
        }
        if closed && label.ends_with("PRIVATE KEY") {
            return Some(PemBlock {
                label: label.to_string(),
                headers,
                body,
            });
        }
    }
    None
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys made with OpenSSL 3.0 for these tests (`openssl` as in each comment), all the same
    /// P-256 key, password `lab secret`.
    const PLAIN_SEC1: &str = include_str!("testdata/ec.key");
    const PLAIN_PKCS8: &str = include_str!("testdata/ec.pk8");
    // openssl pkcs8 -topk8 -v2 aes-256-cbc (PBKDF2-HMAC-SHA256, 2048 rounds)
    const PKCS8_AES256: &str = include_str!("testdata/ec-aes256.pk8");
    // openssl pkcs8 -topk8 -v2 des3 -v2prf hmacWithSHA1
    const PKCS8_DES3_SHA1: &str = include_str!("testdata/ec-des3-sha1.pk8");
    // openssl pkcs8 -topk8 -scrypt
    const PKCS8_SCRYPT: &str = include_str!("testdata/ec-scrypt.pk8");
    // openssl pkcs8 -topk8 -v1 PBE-MD5-DES (with OpenSSL 3's legacy provider)
    const PKCS8_PBES1: &str = include_str!("testdata/ec-pbes1.pk8");
    // openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES (PKCS#12's scheme)
    const PKCS8_PKCS12: &str = include_str!("testdata/ec-pkcs12pbe.pk8");
    // openssl ec -aes128 / -aes256 / -des3 (traditional form)
    const TRAD_AES128: &str = include_str!("testdata/ec-aes128.key");
    const TRAD_AES256: &str = include_str!("testdata/ec-aes256.key");
    const TRAD_DES3: &str = include_str!("testdata/ec-des3.key");
    // openssl genrsa -traditional -aes256 (an RSA PRIVATE KEY, PKCS#1)
    const TRAD_RSA_AES256: &str = include_str!("testdata/rsa-aes256.key");
    const PASSWORD: &str = "lab secret";

    fn secret(key: &PrivateKeyDer<'_>) -> Vec<u8> {
        key.secret_der().to_vec()
    }

    #[test]
    fn every_encrypted_form_opens_to_the_same_key() {
        let sec1 = secret(&parse(PLAIN_SEC1, None).unwrap());
        let pkcs8 = secret(&parse(PLAIN_PKCS8, None).unwrap());
        for text in [TRAD_AES128, TRAD_AES256, TRAD_DES3] {
            let key = parse(text, Some(PASSWORD)).unwrap();
            assert!(matches!(key, PrivateKeyDer::Sec1(_)));
            assert_eq!(secret(&key), sec1);
        }
        for text in [PKCS8_AES256, PKCS8_DES3_SHA1, PKCS8_SCRYPT] {
            let key = parse(text, Some(PASSWORD)).unwrap();
            assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
            assert_eq!(secret(&key), pkcs8);
        }
        let rsa = parse(TRAD_RSA_AES256, Some(PASSWORD)).unwrap();
        assert!(matches!(rsa, PrivateKeyDer::Pkcs1(_)));
    }

    #[test]
    fn an_unencrypted_key_ignores_the_password() {
        let a = parse(PLAIN_SEC1, Some("anything")).unwrap();
        assert_eq!(secret(&a), secret(&parse(PLAIN_SEC1, None).unwrap()));
        assert!(parse(PLAIN_PKCS8, Some("x")).is_ok());
    }

    #[test]
    fn a_wrong_or_missing_password_is_refused() {
        for text in [
            TRAD_AES128,
            TRAD_DES3,
            PKCS8_AES256,
            PKCS8_SCRYPT,
            TRAD_RSA_AES256,
        ] {
            assert_eq!(parse(text, None), Err(KeyError::NoPassword));
            assert_eq!(parse(text, Some("lab secreT")), Err(KeyError::Decrypt));
            assert_eq!(parse(text, Some("")), Err(KeyError::Decrypt));
        }
    }

    #[test]
    fn pbes1_and_unknown_ciphers_say_so() {
        assert!(matches!(
            parse(PKCS8_PBES1, Some(PASSWORD)),
            Err(KeyError::Unsupported(why)) if why.contains("PBES1")
        ));
        assert!(matches!(
            parse(PKCS8_PKCS12, Some(PASSWORD)),
            Err(KeyError::Unsupported(_))
        ));
        let odd = TRAD_AES128.replace("AES-128-CBC", "CAMELLIA-128-CBC");
        assert!(matches!(
            parse(&odd, Some(PASSWORD)),
            Err(KeyError::Unsupported(why)) if why.contains("CAMELLIA-128-CBC")
        ));
        let short_iv = TRAD_AES128.replace("AES-128-CBC,", "AES-128-CBC,00");
        assert!(matches!(
            parse(&short_iv, Some(PASSWORD)),
            Err(KeyError::Unsupported(_))
        ));
    }

    #[test]
    fn hostile_files_are_refused_not_obeyed() {
        assert_eq!(parse("", Some(PASSWORD)), Err(KeyError::NoKey));
        assert_eq!(
            parse(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                None
            ),
            Err(KeyError::NoKey)
        );
        // No END line.
        let open = PLAIN_SEC1.replace("-----END EC PRIVATE KEY-----", "");
        assert_eq!(parse(&open, None), Err(KeyError::NoKey));
        // Bad base64.
        let bad = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
        assert_eq!(parse(bad, None), Err(KeyError::NoKey));
        // Garbage that claims to be encrypted.
        let junk =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            parse(junk, Some(PASSWORD)),
            Err(KeyError::Unsupported(_))
        ));
        let no_dek = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nMAA=\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            parse(no_dek, Some(PASSWORD)),
            Err(KeyError::Unsupported(_))
        ));
    }

    /// Every byte of each file's body changed (the scrypt one left out: 16 MiB a try): each
    /// is refused or opens, none panics.
    #[test]
    fn damaged_keys_never_panic() {
        use base64ct::{Base64, Encoding};
        for text in [
            PLAIN_SEC1,
            PLAIN_PKCS8,
            PKCS8_AES256,
            PKCS8_DES3_SHA1,
            PKCS8_PBES1,
            TRAD_AES128,
            TRAD_DES3,
        ] {
            let block = first_key_block(text).unwrap();
            let der = block.der().unwrap();
            let head: String = block
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}\n"))
                .collect();
            for i in 0..der.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = der.clone();
                    bad[i] ^= flip;
                    let pem = format!(
                        "-----BEGIN {l}-----\n{head}\n{}\n-----END {l}-----\n",
                        Base64::encode_string(&bad),
                        l = block.label
                    );
                    let _ = parse(&pem, Some(PASSWORD));
                }
            }
        }
    }

    #[test]
    fn costly_kdf_parameters_are_refused_before_running() {
        use pkcs8::der::{Decode, Encode};
        use pkcs8::pkcs5::{EncryptionScheme, pbes2::Kdf};
        let block = first_key_block(PKCS8_SCRYPT).unwrap();
        let der = block.der().unwrap();
        let mut info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der).unwrap();
        let EncryptionScheme::Pbes2(params) = &mut info.encryption_algorithm else {
            panic!("scrypt key is PBES2");
        };
        let Kdf::Scrypt(scrypt) = &mut params.kdf else {
            panic!("scrypt");
        };
        scrypt.cost_parameter = 1 << 20;
        let costly = info.to_der().unwrap();
        assert_eq!(pkcs8(&costly, PASSWORD), Err(KeyError::ScryptMemory(1024)));

        let block = first_key_block(PKCS8_AES256).unwrap();
        let der = block.der().unwrap();
        let mut info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der).unwrap();
        let EncryptionScheme::Pbes2(params) = &mut info.encryption_algorithm else {
            panic!("PBES2");
        };
        let Kdf::Pbkdf2(p) = &mut params.kdf else {
            panic!("pbkdf2");
        };
        p.iteration_count = u32::MAX;
        let slow = info.to_der().unwrap();
        assert_eq!(pkcs8(&slow, PASSWORD), Err(KeyError::Iterations(u32::MAX)));
    }

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // openssl enc -aes-256-cbc -md md5 -S 0102030405060708 -k password -P
        assert_eq!(
            bytes_to_key(b"password", &[1, 2, 3, 4, 5, 6, 7, 8], 32),
            hex("E7B0971E52CA5CC8D0539FB3412F6316F7BA2E6EE293D9F3457B99436B51CE02").unwrap()
        );
    }
}

//! Pinning the broker's certificate by its SHA-256 fingerprint, for embedded-tls: what a
//! device with no certificate authorities to trust (no room, no clock to check validity
//! dates) stores instead, 32 bytes written at provisioning.
//!
//! `no_std`, no allocator: the same file builds into a firmware.

use embedded_tls::blocking::{
    Aes128GcmSha256, CertificateEntryRef, CertificateRef, CertificateVerifyRef, CryptoProvider,
    TlsError, TlsVerifier,
};
use embedded_tls::{CryptoRngCore, SignatureScheme};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// The DER prefix of every P-256 public key's SubjectPublicKeyInfo (RFC 5480): SEQUENCE {
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING { 0x04, the point } }. In a
/// certificate whose fingerprint matched it is found once, and the 64 bytes after it are
/// the key's coordinates.
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A,
    0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// A verifier that accepts exactly one server certificate, the one whose DER encoding
/// hashes (SHA-256) to `fingerprint`, and then checks that the server holds its private
/// key (the TLS 1.3 CertificateVerify signature, ECDSA P-256). No chain, no names, no
/// dates: the pin says it all; a new server certificate needs a new pin.
pub(crate) struct PinnedCertificate {
    fingerprint: [u8; 32],
    key: Option<VerifyingKey>,
    transcript: Option<Sha256>,
}

impl PinnedCertificate {
    /// A verifier for the certificate with this SHA-256 fingerprint (as printed by
    /// `openssl x509 -noout -fingerprint -sha256 -in broker.pem`).
    pub(crate) fn new(fingerprint: [u8; 32]) -> Self {
        Self {
            fingerprint,
            key: None,
            transcript: None,
        }
    }
}

/// Equal, in a time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The uncompressed P-256 point (65 bytes, 0x04 first) of the certificate's public key.
fn p256_point(certificate: &[u8]) -> Option<&[u8]> {
    let prefix = P256_SPKI_PREFIX.len();
    let at = certificate
        .windows(prefix)
        .position(|w| w == P256_SPKI_PREFIX)?;
    certificate.get(at + prefix - 1..at + prefix + 64)
}

impl TlsVerifier<Aes128GcmSha256> for PinnedCertificate {
    fn set_hostname_verification(&mut self, _hostname: &str) -> Result<(), TlsError> {
        Ok(()) // the pin names the server
    }

    fn verify_certificate(
        &mut self,
        transcript: &Sha256,
        certificate: CertificateRef,
    ) -> Result<(), TlsError> {
        let Some(CertificateEntryRef::X509(der)) = certificate.entries.first() else {
            return Err(TlsError::InvalidCertificate);
        };
        if !same(&Sha256::digest(der), &self.fingerprint) {
            return Err(TlsError::InvalidCertificate);
        }
        let point = p256_point(der).ok_or(TlsError::InvalidCertificate)?;
        let key = VerifyingKey::from_sec1_bytes(point).map_err(|_| TlsError::InvalidCertificate)?;
        self.key = Some(key);
        self.transcript = Some(transcript.clone());
        Ok(())
    }

    fn verify_signature(&mut self, verify: CertificateVerifyRef) -> Result<(), TlsError> {
        let (Some(key), Some(transcript)) = (self.key.take(), self.transcript.take()) else {
            return Err(TlsError::InvalidSignature);
        };
        if verify.signature_scheme != SignatureScheme::EcdsaSecp256r1Sha256 {
            return Err(TlsError::InvalidSignatureScheme);
        }
        let signature =
            Signature::from_der(verify.signature).map_err(|_| TlsError::InvalidSignature)?;
        // What the server signed (RFC 8446 §4.4.3): 64 spaces, the context string, a zero
        // byte, the handshake's transcript hash up to its Certificate.
        const CONTEXT: &[u8] = b"TLS 1.3, server CertificateVerify";
        let mut signed = [0x20u8; 64 + CONTEXT.len() + 1 + 32];
        signed[64..64 + CONTEXT.len()].copy_from_slice(CONTEXT);
        signed[64 + CONTEXT.len()] = 0;
        signed[64 + CONTEXT.len() + 1..].copy_from_slice(&transcript.finalize());
        key.verify(&signed, &signature)
            .map_err(|_| TlsError::InvalidSignature)
    }
}

/// The crypto embedded-tls uses: TLS_AES_128_GCM_SHA256, the device's random numbers, and
/// the pinned verifier.
pub(crate) struct PinnedProvider<R> {
    rng: R,
    verifier: PinnedCertificate,
}

impl<R: CryptoRngCore> PinnedProvider<R> {
    /// `rng` (the chip's true random number generator on a device) and the pin.
    pub(crate) fn new(rng: R, fingerprint: [u8; 32]) -> Self {
        Self {
            rng,
            verifier: PinnedCertificate::new(fingerprint),
        }
    }
}

impl<R: CryptoRngCore> CryptoProvider for PinnedProvider<R> {
    type CipherSuite = Aes128GcmSha256;
    type Signature = p256::ecdsa::DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Self::CipherSuite>, TlsError> {
        Ok(&mut self.verifier)
    }
}

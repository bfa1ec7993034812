//! Row signatures: the service signs every request it writes (`solicitudes_notificacion.firma`), and the dispatcher
//! sends a keyed row only when its signature checks. A database role cannot be the proof that a row is the
//! service's: the service itself runs as the runtime role, and the app's role usually owns the table. So anyone who
//! can write the table could otherwise insert a `Pendiente` row with a `clave_dedup` that sends any text to any
//! address from the school's own sender. The key lives in the configuration only, never in the database.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::Sha256;

/// Why a keyed row without a valid signature is not sent (`ultimo_error`, in Spanish for the staff).
pub const REFUSED: &str = "rechazada: la solicitud no lleva la firma del servicio (fue escrita o modificada por otro \
     rol de la base de datos); no se envía. Un aviso legítimo del POS se inserta sin clave_dedup";

/// Shortest key accepted, in bytes: HMAC-SHA256's block of security.
pub const MIN_KEY_BYTES: usize = 32;

/// What a signature covers: what is sent (type and data), to whom (channel, address, and the client the fallback
/// finds its next address from), the card a sent notice stamps, and the key that makes it one notice. A change to any
/// of them after the service wrote the row breaks the signature. Not `canales_respaldo`: it only picks which of the
/// same client's channels carry the same data next, and the POS may set it on its own rows.
#[derive(Debug, Clone, Copy)]
pub struct SignedFields<'a> {
    pub clave_dedup: &'a str,
    pub id_cliente: Option<i32>,
    pub nro_tarjeta: Option<&'a str>,
    pub destino: Option<&'a str>,
    pub destinatario: Option<&'a str>,
    pub tipo: Option<&'a str>,
    pub datos: Option<&'a Json>,
}

#[derive(Clone)]
pub struct RowSigner {
    key: Arc<[u8]>,
}

impl fmt::Debug for RowSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RowSigner(********)")
    }
}

impl RowSigner {
    pub fn new(key: &str) -> Result<Self, String> {
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "CANTINA__DATABASE__SIGNING_KEY: at least {MIN_KEY_BYTES} bytes (for example `openssl rand -base64 48`)"
            ));
        }
        Ok(Self { key: Arc::from(key.as_bytes()) })
    }

    /// A key for this process alone: for commands that write no request (`check-config` without a database)
    /// and the demo's throwaway database.
    pub fn ephemeral() -> Self {
        let key: Vec<u8> = (0..48).map(|_| fastrand::u8(..)).collect();
        Self { key: Arc::from(key) }
    }

    fn mac(&self, f: &SignedFields<'_>) -> Hmac<Sha256> {
        // new_from_slice accepts any key length for HMAC.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        let mut datos = String::new();
        if let Some(d) = f.datos {
            canonical_json(d, &mut datos);
        }
        let id_cliente = f.id_cliente.map(|id| id.to_string());
        // Each field length-prefixed and marked present or absent, so no two rows share an encoding.
        for field in [
            Some(f.clave_dedup),
            id_cliente.as_deref(),
            f.nro_tarjeta,
            f.destino,
            f.destinatario,
            f.tipo,
            f.datos.map(|_| datos.as_str()),
        ] {
            match field {
                Some(v) => {
                    mac.update(b"+");
                    mac.update(&(v.len() as u64).to_be_bytes());
                    mac.update(v.as_bytes());
                }
                None => mac.update(b"-"),
            }
        }
        mac
    }

    /// `v1:` and the hex HMAC-SHA256 (67 characters; the version leaves room for another scheme).
    pub fn sign(&self, f: &SignedFields<'_>) -> String {
        let tag = self.mac(f).finalize().into_bytes();
        let mut out = String::with_capacity(3 + 2 * tag.len());
        out.push_str("v1:");
        for b in tag {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// In constant time.
    pub fn verify(&self, f: &SignedFields<'_>, firma: Option<&str>) -> bool {
        let Some(hex) = firma.and_then(|s| s.strip_prefix("v1:")) else {
            return false;
        };
        let Some(tag) = decode_hex(hex) else {
            return false;
        };
        self.mac(f).verify_slice(&tag).is_ok()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// JSON with object keys sorted, no spaces: the same text for the value the service wrote and for the one it
/// reads back from `jsonb` (which reorders keys), whatever order serde_json keeps maps in.
fn canonical_json(v: &Json, out: &mut String) {
    match v {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> RowSigner {
        RowSigner::new("0123456789abcdef0123456789abcdef-test").unwrap()
    }

    fn fields<'a>(datos: &'a Json, destinatario: &'a str) -> SignedFields<'a> {
        SignedFields {
            clave_dedup: "recarga_exitosa:1:email",
            id_cliente: Some(7),
            nro_tarjeta: Some("T-1"),
            destino: Some("Email"),
            destinatario: Some(destinatario),
            tipo: Some("recarga_exitosa"),
            datos: Some(datos),
        }
    }

    #[test]
    fn a_signature_checks_and_any_change_breaks_it() {
        let datos = serde_json::json!({"monto": 50000, "alumno": "Luis", "tarjetas": [{"b": 1, "a": 2}]});
        let s = signer();
        let firma = s.sign(&fields(&datos, "ana@example.com"));
        assert!(firma.starts_with("v1:") && firma.len() == 67, "{firma}");
        assert!(s.verify(&fields(&datos, "ana@example.com"), Some(&firma)));
        assert!(!s.verify(&fields(&datos, "phish@example.com"), Some(&firma)));
        let other = serde_json::json!({"monto": 50001, "alumno": "Luis", "tarjetas": [{"b": 1, "a": 2}]});
        assert!(!s.verify(&fields(&other, "ana@example.com"), Some(&firma)));
        let mut f = fields(&datos, "ana@example.com");
        f.destino = Some("SMS");
        assert!(!s.verify(&f, Some(&firma)));
        let mut f = fields(&datos, "ana@example.com");
        f.id_cliente = Some(8);
        assert!(!s.verify(&f, Some(&firma)), "another family");
        let mut f = fields(&datos, "ana@example.com");
        f.nro_tarjeta = None;
        assert!(!s.verify(&f, Some(&firma)), "another card");
        assert!(!s.verify(&fields(&datos, "ana@example.com"), None));
        assert!(!s.verify(&fields(&datos, "ana@example.com"), Some("v1:zz")));
        assert!(
            !RowSigner::new("another key, also long enough to use!!")
                .unwrap()
                .verify(&fields(&datos, "ana@example.com"), Some(&firma))
        );
    }

    #[test]
    fn key_order_does_not_matter_and_absent_differs_from_empty() {
        let a: Json = serde_json::from_str(r#"{"b": {"y": 1, "x": [true, null]}, "a": "ñ"}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"a":"ñ","b":{"x":[true,null],"y":1}}"#).unwrap();
        let s = signer();
        assert_eq!(s.sign(&fields(&a, "x")), s.sign(&fields(&b, "x")));
        let mut none = fields(&a, "");
        none.destinatario = None;
        assert_ne!(s.sign(&none), s.sign(&fields(&a, "")));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(RowSigner::new("short").unwrap_err().contains("SIGNING_KEY"));
    }
}

//! SMS encoding: whether a text travels as GSM-7 or UCS-2, how many segments it takes, and the transliteration
//! that keeps Spanish and Guaraní names in GSM-7.

/// How an SMS text travels: in the 7-bit GSM 03.38 alphabet, or as UCS-2 (UTF-16) when any character is outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// The GSM 03.38 basic character set (one septet each), in table order, without the escape code 0x1B.
/// Note: é, è, ù, ì, ò, à, É, ñ, Ñ, ä, ö, ü, Ä, Ö, Ü, Ç, ¿, ¡ are in it; á, í, ó, ú, Á, Í, Ó, Ú, ç are not.
const GSM7_BASIC: &str = concat!(
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
);

/// The GSM 03.38 extension table: each costs two septets (escape + code).
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// Septets a character takes in GSM-7, or `None` when it is not representable.
fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Parts of a message whose characters cost `costs` units: one part up to `single` units; beyond that, parts of
/// `part` units (the rest is the concatenation header), never splitting a character (an escape pair, a surrogate pair).
fn segments(costs: impl Iterator<Item = usize> + Clone, single: usize, part: usize) -> usize {
    if costs.clone().sum::<usize>() <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for c in costs {
        if used + c > part {
            parts += 1;
            used = 0;
        }
        used += c;
    }
    parts
}

/// Whether `text` can be sent as GSM-7 (basic table, extension characters counting two septets) or needs UCS-2
/// (`₲`, emoji, á/í/ó/ú, …), and how many SMS segments it takes: 160 septets or 70 UTF-16 units in one segment,
/// 153 or 67 per segment when concatenated.
pub fn sms_encoding(text: &str) -> (Encoding, usize) {
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        (Encoding::Gsm7, segments(text.chars().map(|c| gsm7_septets(c).unwrap_or(1)), 160, 153))
    } else {
        (Encoding::Ucs2, segments(text.chars().map(char::len_utf16), 70, 67))
    }
}

/// The short text as an SMS should carry it: characters outside GSM-7 that have a plain equivalent are
/// transliterated (á → a, Í → I, õ → o, ₲ → Gs., typographic quotes and dashes → ASCII) so a Spanish or Guaraní
/// name does not turn the whole message into UCS-2. é, ñ, ü and the other GSM-7 letters are kept as they are;
/// characters with no equivalent (emoji, other scripts) are kept too.
pub fn sms_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if gsm7_septets(c).is_some() {
            out.push(c);
            continue;
        }
        let plain: &str = match c {
            'á' | 'â' | 'ã' | 'ā' | 'ă' | 'ą' => "a",
            'Á' | 'À' | 'Â' | 'Ã' | 'Ā' | 'Ă' | 'Ą' => "A",
            'ê' | 'ë' | 'ẽ' | 'ē' | 'ę' | 'ě' => "e",
            'È' | 'Ê' | 'Ë' | 'Ẽ' | 'Ē' | 'Ę' | 'Ě' => "E",
            'í' | 'î' | 'ï' | 'ĩ' | 'ī' => "i",
            'Í' | 'Ì' | 'Î' | 'Ï' | 'Ĩ' | 'Ī' => "I",
            'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
            'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ō' | 'Ő' => "O",
            'ú' | 'û' | 'ũ' | 'ū' | 'ű' | 'ů' => "u",
            'Ú' | 'Ù' | 'Û' | 'Ũ' | 'Ū' | 'Ű' | 'Ů' => "U",
            'ý' | 'ÿ' | 'ỹ' => "y",
            'Ý' | 'Ỹ' => "Y",
            'ç' | 'ć' | 'č' => "c",
            'Ć' | 'Č' => "C",
            'ń' | 'ň' => "n",
            'Ń' | 'Ň' => "N",
            'š' | 'ś' => "s",
            'Š' | 'Ś' => "S",
            'ž' | 'ź' | 'ż' => "z",
            'Ž' | 'Ź' | 'Ż' => "Z",
            'ł' => "l",
            'Ł' => "L",
            'œ' => "oe",
            'Œ' => "OE",
            '₲' => "Gs.",
            'º' | '°' => "o",
            'ª' => "a",
            '\u{A0}' | '\u{2007}' | '\u{202F}' | '\u{2009}' | '\t' => " ",
            '‘' | '’' | '‚' | '′' | 'ʼ' | '´' | '`' => "'",
            '“' | '”' | '„' | '«' | '»' | '″' => "\"",
            '‐' | '‑' | '‒' | '–' | '—' | '−' => "-",
            '…' => "...",
            '·' | '•' => "-",
            // Combining marks (a Guaraní g̃ typed as g + U+0303, or decomposed accents) and zero-width characters.
            '\u{300}'..='\u{36F}' | '\u{200B}'..='\u{200D}' | '\u{FEFF}' => "",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(plain);
    }
    out
}

use std::fmt;

/// An amount of whole guaraníes (the Cantina database has no cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Guaranies(pub i64);

impl fmt::Display for Guaranies {
    /// `Gs. 50.000`: dot as the thousands separator, as the staff and parents write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.unsigned_abs().to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push('.');
            }
            grouped.push(c);
        }
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "Gs. {sign}{grouped}")
    }
}

impl Guaranies {
    /// A card's balance as a parent reads it: `Gs. 16.000`, or `debe Gs. 8.000` below zero ("Gs. -8.000" is easily
    /// read as 8.000 left).
    pub fn saldo(self) -> String {
        if self.0 < 0 { format!("debe {}", Guaranies(self.0.saturating_neg())) } else { self.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::Guaranies;

    #[test]
    fn formats_with_dot_thousands_separator() {
        assert_eq!(Guaranies(0).to_string(), "Gs. 0");
        assert_eq!(Guaranies(999).to_string(), "Gs. 999");
        assert_eq!(Guaranies(5_000).to_string(), "Gs. 5.000");
        assert_eq!(Guaranies(50_000).to_string(), "Gs. 50.000");
        assert_eq!(Guaranies(1_234_567).to_string(), "Gs. 1.234.567");
        assert_eq!(Guaranies(-15_500).to_string(), "Gs. -15.500");
        assert_eq!(Guaranies(i64::MIN).to_string(), "Gs. -9.223.372.036.854.775.808");
    }

    #[test]
    fn a_negative_balance_reads_as_a_debt() {
        assert_eq!(Guaranies(16_000).saldo(), "Gs. 16.000");
        assert_eq!(Guaranies(0).saldo(), "Gs. 0");
        assert_eq!(Guaranies(-8_000).saldo(), "debe Gs. 8.000");
    }
}

use std::collections::HashMap;
use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};

use super::Settings;

/// The Cantina team's Django `.env` names and where each lands in [`Settings`].
pub const TEAM_NAMES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("LISTEN_DATABASE_URL", "database.listen_url"),
    ("EMAIL_BACKEND", "email.backend"),
    ("EMAIL_HOST", "email.host"),
    ("EMAIL_PORT", "email.port"),
    ("EMAIL_USE_TLS", "email.use_tls"),
    ("EMAIL_USE_SSL", "email.use_ssl"),
    ("EMAIL_HOST_USER", "email.host_user"),
    ("EMAIL_HOST_PASSWORD", "email.host_password"),
    ("DEFAULT_FROM_EMAIL", "email.from"),
    ("EMAIL_FILE_PATH", "email.file_path"),
    ("SENDGRID_API_KEY", "email.sendgrid_api_key"),
    ("SENDGRID_API_URL", "email.sendgrid_api_url"),
    ("AWS_ACCESS_KEY_ID", "email.aws_access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "email.aws_secret_access_key"),
    ("AWS_SES_REGION_NAME", "email.aws_ses_region_name"),
    ("AWS_SES_REGION_ENDPOINT", "email.aws_ses_region_endpoint"),
    ("SMS_PROVIDER", "sms.provider"),
    ("TIGO_SMS_API_KEY", "sms.tigo_api_key"),
    ("TIGO_SMS_API_URL", "sms.tigo_api_url"),
    ("PERSONAL_SMS_API_KEY", "sms.personal_api_key"),
    ("PERSONAL_SMS_API_URL", "sms.personal_api_url"),
    ("TWILIO_ACCOUNT_SID", "twilio.account_sid"),
    ("TWILIO_AUTH_TOKEN", "twilio.auth_token"),
    ("TWILIO_PHONE_NUMBER", "twilio.phone_number"),
    ("TWILIO_WHATSAPP_NUMBER", "twilio.whatsapp_number"),
    ("TWILIO_API_URL", "twilio.api_url"),
    ("WHATSAPP_PROVIDER", "whatsapp.provider"),
    ("WHATSAPP_ACCESS_TOKEN", "whatsapp.access_token"),
    ("WHATSAPP_PHONE_NUMBER_ID", "whatsapp.phone_number_id"),
    ("WHATSAPP_API_URL", "whatsapp.api_url"),
    ("WHATSAPP_API_VERSION", "whatsapp.api_version"),
    ("WHATSAPP_APP_SECRET", "webhooks.whatsapp_app_secret"),
    ("WHATSAPP_VERIFY_TOKEN", "webhooks.whatsapp_verify_token"),
];

/// Names whose value may instead come from the file named by `NAME_FILE` (besides any `CANTINA__…` key).
const FILE_SECRET_NAMES: &[&str] = &[
    "DATABASE_URL",
    "LISTEN_DATABASE_URL",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "SENDGRID_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TIGO_SMS_API_KEY",
    "PERSONAL_SMS_API_KEY",
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {key} = {path}: {source}")]
    SecretFile { key: String, path: String, source: std::io::Error },
    #[error(transparent)]
    DotEnv(#[from] super::dotenv::DotEnvError),
    #[error("configuration file {path}: {source}")]
    File { path: String, source: config::ConfigError },
    /// Every value of the wrong type and, with them, every other problem found (see [`super::typed`]).
    #[error("{0}")]
    Invalid(super::ValidationErrors),
}

/// Where to read configuration from. `from_process()` is what the binary uses; tests pass explicit maps.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// TOML file (`--config FILE` or `CANTINA_NOTIFY_CONFIG`).
    pub file: Option<PathBuf>,
    /// `.env` file to read, if it exists.
    pub dotenv: Option<PathBuf>,
    /// The process environment (or a stand-in).
    pub env: HashMap<String, String>,
}

impl LoadOptions {
    pub fn from_process(file: Option<PathBuf>) -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        let file = file.or_else(|| env.get("CANTINA_NOTIFY_CONFIG").filter(|s| !s.is_empty()).map(PathBuf::from));
        Self { file, dotenv: Some(PathBuf::from(".env")), env }
    }
}

impl Settings {
    pub fn load(opts: &LoadOptions) -> Result<Settings, ConfigError> {
        let mut vars = match &opts.dotenv {
            Some(p) if p.exists() => super::dotenv::read(p)?,
            _ => HashMap::new(),
        };
        vars.extend(opts.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        resolve_file_secrets(&mut vars)?;

        let team: config::Map<String, String> = TEAM_NAMES
            .iter()
            .filter_map(|(name, path)| {
                let v = vars.get(*name)?;
                // Empty means unset, as in Django's `env()` defaults.
                (!v.is_empty()).then(|| (path.replace('.', "__"), v.clone()))
            })
            .collect();
        let cantina: config::Map<String, String> =
            vars.iter().filter(|(k, _)| k.starts_with("CANTINA__")).map(|(k, v)| (k.clone(), v.clone())).collect();

        let mut builder = Config::builder();
        if let Some(path) = &opts.file {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml).required(true));
        }
        let built = builder
            .add_source(Environment::default().separator("__").source(Some(team)))
            .add_source(
                Environment::with_prefix("CANTINA")
                    .prefix_separator("__")
                    .separator("__")
                    .ignore_empty(true)
                    .source(Some(cantina)),
            )
            .build()
            .map_err(|e| match &opts.file {
                Some(p) => ConfigError::File { path: p.display().to_string(), source: e },
                None => ConfigError::Invalid(super::ValidationErrors(vec![e.to_string()])),
            })?;
        let file = opts.file.as_ref().map(|p| p.display().to_string());
        let typed = super::typed::deserialize(built.cache, &|key| spelled(key, &vars, file.as_deref()));
        match typed.settings {
            Some(settings) if typed.problems.is_empty() => Ok(settings),
            // With the mistyped keys at their defaults, the rest is checked too, so one run shows every problem.
            Some(settings) => {
                let mut problems = typed.problems;
                if let Err(e) = settings.validate(false) {
                    problems.extend(e.0);
                }
                Err(ConfigError::Invalid(super::ValidationErrors(problems)))
            }
            None => Err(ConfigError::Invalid(super::ValidationErrors(typed.problems))),
        }
    }
}

/// A dotted key (`email.port`) as the operator wrote it: the `CANTINA__…` name if that was set, else the team's
/// `.env` name (with the `CANTINA__…` one), else the key in the TOML file.
fn spelled(key: &str, vars: &HashMap<String, String>, file: Option<&str>) -> String {
    let env = format!("CANTINA__{}", key.replace('.', "__").to_uppercase());
    let set = |name: &str| vars.get(name).is_some_and(|v| !v.is_empty());
    if set(&env) {
        return env;
    }
    if let Some((team, _)) = TEAM_NAMES.iter().find(|(name, path)| *path == key && set(name)) {
        return format!("{team} ({env})");
    }
    match file {
        Some(file) => format!("{key} in {file} ({env})"),
        None => env,
    }
}

/// `NAME_FILE=/run/secrets/name` → `NAME` = the file's content without the trailing newline (Docker/Kubernetes).
/// A value given directly wins over the file.
fn resolve_file_secrets(vars: &mut HashMap<String, String>) -> Result<(), ConfigError> {
    let file_keys: Vec<(String, String)> = vars
        .iter()
        .filter_map(|(k, v)| {
            let base = k.strip_suffix("_FILE")?;
            let allowed = FILE_SECRET_NAMES.contains(&base) || base.starts_with("CANTINA__");
            (allowed && !v.is_empty()).then(|| (k.clone(), base.to_string()))
        })
        .collect();
    for (key, base) in file_keys {
        if vars.get(&base).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        let path = vars[&key].clone();
        let content = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
            key: key.clone(),
            path: path.clone(),
            source,
        })?;
        vars.insert(base, content.trim_end_matches(['\n', '\r']).to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Settings {
        Settings::load(&LoadOptions { env: env(pairs), ..Default::default() }).unwrap()
    }

    #[test]
    fn defaults_apply_with_an_empty_environment() {
        let s = load(&[]);
        assert_eq!(s.email.backend, "console");
        assert_eq!(s.http.addr, "0.0.0.0:8080");
        assert_eq!(s.rules.saldo_bajo.umbral, 5000);
        assert_eq!(s.rules.recarga_exitosa.channels, vec!["email"]);
        assert!(s.database.url.is_none());
        assert_eq!(s.twilio.api_url, "https://api.twilio.com");
        assert_eq!(s.whatsapp.api_version, "v23.0");
    }

    #[test]
    fn team_names_and_cantina_names_are_read() {
        let s = load(&[
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"),
            ("EMAIL_PORT", "587"),
            ("EMAIL_USE_TLS", "True"),
            ("EMAIL_USE_SSL", "False"),
            ("CANTINA__RULES__SALDO_BAJO__CHANNELS", "email, sms"),
            ("CANTINA__RULES__SALDO_BAJO__UMBRAL", "7000"),
            ("CANTINA__LISTENER__BATCH_SIZE", "50"),
        ]);
        assert_eq!(s.database.url.as_ref().map(|u| u.expose()), Some("postgres://u:p@h/db"));
        assert_eq!(s.email.port, Some(587));
        assert_eq!(s.email.use_tls, Some(true));
        assert_eq!(s.email.use_ssl, Some(false));
        assert_eq!(s.rules.saldo_bajo.channels, vec!["email", "sms"]);
        assert_eq!(s.rules.saldo_bajo.umbral, 7000);
        assert_eq!(s.listener.batch_size, 50);
    }

    #[test]
    fn cantina_names_win_over_team_names_which_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("cn-cfg-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[email]\nbackend = \"file\"\nhost = \"from-file\"\nport = 25\n[http]\naddr = \"127.0.0.1:9\"\n",
        )
        .unwrap();
        let s = Settings::load(&LoadOptions {
            file: Some(file),
            dotenv: None,
            env: env(&[("EMAIL_HOST", "from-team"), ("CANTINA__EMAIL__HOST", "from-cantina"), ("EMAIL_PORT", "2525")]),
        })
        .unwrap();
        assert_eq!(s.email.backend, "file");
        assert_eq!(s.email.host, "from-cantina");
        assert_eq!(s.email.port, Some(2525));
        assert_eq!(s.http.addr, "127.0.0.1:9");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dotenv_is_read_and_the_process_environment_wins() {
        let dir = std::env::temp_dir().join(format!("cn-env-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let dotenv = dir.join(".env");
        std::fs::write(&dotenv, "EMAIL_HOST=smtp.gmail.com\nEMAIL_PORT=587\n# comment\nDEFAULT_FROM_EMAIL=\"Cantina Tita <noreply@x.py>\"\n").unwrap();
        let s = Settings::load(&LoadOptions { file: None, dotenv: Some(dotenv), env: env(&[("EMAIL_PORT", "465")]) })
            .unwrap();
        assert_eq!(s.email.host, "smtp.gmail.com");
        assert_eq!(s.email.port, Some(465));
        assert_eq!(s.email.from, "Cantina Tita <noreply@x.py>");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = std::env::temp_dir().join(format!("cn-sec-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "s3cret\n").unwrap();
        std::fs::write(dir.join("db"), "postgres://a:b@c/d\n").unwrap();
        let s = load(&[
            ("EMAIL_HOST_PASSWORD_FILE", dir.join("pw").to_str().unwrap()),
            ("DATABASE_URL_FILE", dir.join("db").to_str().unwrap()),
        ]);
        assert_eq!(s.email.host_password.as_ref().map(|p| p.expose()), Some("s3cret"));
        assert_eq!(s.database.url.as_ref().map(|u| u.expose()), Some("postgres://a:b@c/d"));
        let missing = Settings::load(&LoadOptions {
            env: env(&[("TWILIO_AUTH_TOKEN_FILE", "/nonexistent/token")]),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(missing.contains("TWILIO_AUTH_TOKEN_FILE"), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let err = Settings::load(&LoadOptions {
            env: env(&[("CANTINA__RULES__SALDO_BAJO__UMBRAL", "mucho")]),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("CANTINA__RULES__SALDO_BAJO__UMBRAL"), "{err}");
        let err = Settings::load(&LoadOptions { env: env(&[("EMAIL_USE_TLS", "maybe")]), ..Default::default() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("EMAIL_USE_TLS"), "{err}");
    }

    /// A value of the wrong type is named by its keys and what they take, never shown (a secret pasted on the wrong
    /// line must not reach a terminal), and every problem is reported, not only the first.
    #[test]
    fn a_mistyped_value_is_never_shown_and_every_problem_is_reported() {
        let load_err = |pairs: &[(&str, &str)]| {
            Settings::load(&LoadOptions { env: env(pairs), ..Default::default() }).unwrap_err().to_string()
        };
        let err = load_err(&[("EMAIL_PORT", "tu_app_password_16_digitos")]);
        assert!(!err.contains("tu_app_password"), "{err}");
        assert!(
            err.contains(
                "EMAIL_PORT (CANTINA__EMAIL__PORT): expected an integer from 1 to 65535 (the value is not shown)"
            ),
            "{err}"
        );
        let err = load_err(&[("EMAIL_USE_TLS", "Tru3-s3cr3t")]);
        assert!(!err.to_lowercase().contains("tru3-s3cr3t"), "{err}");
        assert!(err.contains("EMAIL_USE_TLS (CANTINA__EMAIL__USE_TLS): expected true or false"), "{err}");
        let err = load_err(&[("CANTINA__EMAIL__PORT", "abc")]);
        assert!(!err.contains("abc"), "{err}");
        assert!(err.contains("CANTINA__EMAIL__PORT: expected an integer from 1 to 65535"), "{err}");

        let err = load_err(&[
            ("EMAIL_BACKEND", "mailgun"),
            ("EMAIL_PORT", "99999"),
            ("CANTINA__DISPATCH__LEASE_SECONDS", "-1"),
        ]);
        assert!(!err.contains("99999") && !err.contains("-1 "), "{err}");
        assert!(err.contains("EMAIL_PORT (CANTINA__EMAIL__PORT): expected an integer from 1 to 65535"), "{err}");
        assert!(err.contains("CANTINA__DISPATCH__LEASE_SECONDS: expected an integer (the value"), "{err}");
        assert!(err.contains("EMAIL_BACKEND: unknown backend (expected console, file"), "{err}");
        assert!(!err.contains("mailgun"), "{err}");
        assert!(err.starts_with("3 configuration problem(s):"), "{err}");
        // 0 fits the type but is no port.
        let err = load(&[("EMAIL_PORT", "0")]).validate(false).unwrap_err().to_string();
        assert!(err.contains("EMAIL_PORT: expected an integer from 1 to 65535"), "{err}");
    }

    /// The Cantina guide's `.env` blocks and the variants file, copied from the shared seed material.
    fn seed_env_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-env")
    }

    fn seed_env_files() -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(seed_env_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "env"))
            .collect();
        files.sort();
        files
    }

    /// Loads a seed file the way `check-config` does (the file as `.env`, nothing else from the environment
    /// but a database and a signing key) and returns the settings and check-config's problems.
    fn check_config(dotenv: &std::path::Path) -> (Settings, Vec<String>) {
        let s = Settings::load(&LoadOptions {
            file: None,
            dotenv: Some(dotenv.to_path_buf()),
            env: env(&[
                ("DATABASE_URL", "postgres://app@db.example/cantina"),
                ("CANTINA__DATABASE__SIGNING_KEY", "test-signing-key-0123456789abcdef0123456789"),
            ]),
        })
        .unwrap_or_else(|e| panic!("{}: {e}", dotenv.display()));
        let problems = match s.validate(true) {
            Ok((_, providers)) => {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let _guard = rt.enter();
                let pool =
                    crate::db::pool("postgres://app@db.example/cantina", 2, std::time::Duration::from_secs(1)).unwrap();
                crate::channels::Channels::from_settings(&s, &providers, &pool).err().unwrap_or_default()
            }
            Err(e) => e.0,
        };
        (s, problems)
    }

    #[test]
    fn seed_env_every_file_reads_as_decouple_reads_it() {
        let files = seed_env_files();
        assert_eq!(files.len(), 9, "{files:?}");
        for file in &files {
            let read = crate::config::dotenv::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let name = file.file_name().unwrap().to_str().unwrap();
            let expected: HashMap<String, String> = if name == "variants.env" {
                serde_json::from_slice(&std::fs::read(seed_env_dir().join("variants.expected.json")).unwrap()).unwrap()
            } else {
                // The guide's blocks have no quotes, no spaces around `=` and no CR: decouple's reading is
                // simply each non-comment line split at its first `=`.
                std::fs::read_to_string(file)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.is_empty())
                    .map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap())
                    .collect()
            };
            assert_eq!(read, expected, "{name}");
        }
    }

    #[test]
    fn seed_env_every_file_loads_and_maps_to_the_settings() {
        for file in seed_env_files() {
            let name = file.file_name().unwrap().to_str().unwrap().to_string();
            let (s, problems) = check_config(&file);
            match name.as_str() {
                "email-gmail.env" => {
                    assert_eq!(s.email.from, "Cantina Tita <tu_email@gmail.com>");
                    assert_eq!(s.email.host, "smtp.gmail.com");
                    assert_eq!(s.email.port, Some(587));
                    assert_eq!(s.email.use_tls, Some(true));
                    assert_eq!(s.email.host_password.as_ref().map(|p| p.expose()), Some("tu_app_password_16_digitos"));
                }
                "email-sendgrid.env" => {
                    assert_eq!(s.email.from, "Cantina Tita <noreply@tudominio.com>");
                    assert_eq!(s.email.sendgrid_api_key.as_ref().map(|p| p.expose()), Some("tu_sendgrid_api_key"));
                }
                "email-ses.env" => {
                    assert_eq!(s.email.from, "Cantina Tita <noreply@tudominio.com>");
                    assert_eq!(s.email.aws_ses_region_name.as_deref(), Some("us-east-1"));
                    assert_eq!(s.email.aws_ses_region_endpoint.as_deref(), Some("email.us-east-1.amazonaws.com"));
                    assert_eq!(s.email.ses_region(), Ok(Some("us-east-1".to_string())));
                    assert_eq!(s.email.aws_secret_access_key.as_ref().map(|p| p.expose()), Some("tu_secret_key"));
                }
                "sms-personal.env" => {
                    assert_eq!(s.sms.provider.as_deref(), Some("personal"));
                    assert_eq!(s.sms.personal_api_url.as_deref(), Some("https://api.personal.com.py/sms"));
                }
                "sms-tigo.env" => {
                    assert_eq!(s.sms.provider.as_deref(), Some("tigo"));
                    assert_eq!(s.sms.tigo_api_key.as_ref().map(|p| p.expose()), Some("tu_api_key_tigo"));
                }
                "sms-twilio.env" => {
                    assert_eq!(s.sms.provider.as_deref(), Some("twilio"));
                    assert_eq!(s.twilio.phone_number.as_deref(), Some("+14155551234"));
                }
                "whatsapp-business-api.env" => {
                    assert_eq!(s.whatsapp.provider.as_deref(), Some("business_api"));
                    assert_eq!(s.whatsapp.phone_number_id.as_deref(), Some("tu_phone_number_id"));
                }
                "whatsapp-twilio.env" => {
                    assert_eq!(s.whatsapp.provider.as_deref(), Some("twilio"));
                    assert_eq!(s.twilio.whatsapp_number.as_deref(), Some("whatsapp:+14155238886"));
                }
                "variants.env" => {
                    assert_eq!(s.email.from, "Cantina Tita <cantinatita@gmail.com>");
                    assert_eq!(s.email.host_password.as_ref().map(|p| p.expose()), Some("abcd efgh ijkl mnop"));
                    assert_eq!(s.email.host_user.as_deref(), Some("cantinatita@gmail.com"));
                    assert_eq!(s.whatsapp.access_token.as_ref().map(|p| p.expose()), Some("EAAG123"));
                    assert_eq!(s.sms.personal_api_key.as_ref().map(|p| p.expose()), Some("key # trailing note"));
                }
                other => panic!("a seed file without expectations: {other}"),
            }
            // The only problem check-config finds is the guide's placeholder Twilio SID, which is not a SID.
            let expected: Vec<String> = if name.contains("twilio") {
                vec!["TWILIO_ACCOUNT_SID must be the account SID (AC followed by 32 hexadecimal digits)".into()]
            } else {
                vec![]
            };
            assert_eq!(problems, expected, "{name}");
        }
    }
}

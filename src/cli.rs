//! The command line: parses arguments, loads settings, runs one command, maps errors to exit codes.
//!
//! Exit codes: 0 success; 1 a runtime failure (database down, Exchange unreachable, …);
//! 2 bad input (command line, configuration file, apply file, credential key).
//! This module and `main` are the only places that use `anyhow`.

use crate::config::{ConfigError, Settings};
use crate::crypto::{CredentialCipher, CredentialKey, CryptoError};
use crate::operator::apply::{self, ApplyError};
use crate::store::{self, Store};
use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// exsync — server-side synchronization of Exchange mailboxes with a Postgres database.
#[derive(Debug, Parser)]
#[command(name = "exsync", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: config/exsync.toml when it exists). Environment
    /// variables EXSYNC__SECTION__KEY override its values; DATABASE_URL sets database.url.
    #[arg(long, global = true, value_name = "PATH", env = "EXSYNC_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: migrate, then synchronise every due mailbox until SIGTERM / SIGINT.
    Run,
    /// Watch exsync work: an in-process fake Exchange with a seeded organisation, synced by the
    /// real daemon into the configured database, with progress and a summary.
    Demo {
        /// Exit 0 once every mailbox has completed a full pass (otherwise run until Ctrl-C).
        #[arg(long)]
        once: bool,
        /// Mailboxes in each of the three demo profiles.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=2000))]
        mailboxes_per_profile: u16,
        /// With --once: fail if not every mailbox completed a pass within this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Measure exsync end to end: the in-process fake Exchange, a throw-away database
    /// (exsync_bench_<random> on the server of database.url, dropped at the end) and the real
    /// daemon; prints import, no-change cycle, sending, CPU, memory and connection figures.
    Bench {
        /// The preset scenario (small: 20×500, wide: 10,000×5, deep: 10×50,000).
        #[arg(long, value_enum, default_value = "small")]
        scenario: crate::operator::bench::Scenario,
        /// Print exactly one JSON object on standard output (progress goes to standard error).
        #[arg(long)]
        json: bool,
        /// The protocol of every benchmark profile: ews (exchange_server, impersonation) or
        /// graph (exchange_online, app-only OAuth against the fake Graph).
        #[arg(long, value_enum, default_value = "ews")]
        protocol: crate::operator::bench::Protocol,
        /// Mailboxes (overrides the scenario).
        #[arg(long, value_name = "M")]
        mailboxes: Option<u32>,
        /// Inbox messages per mailbox (overrides the scenario).
        #[arg(long, value_name = "N")]
        items: Option<u32>,
        /// Profiles, mailboxes spread over them (overrides the scenario).
        #[arg(long, value_name = "K")]
        profiles: Option<u32>,
        /// MaximumConcurrentConnections of every profile (overrides the scenario).
        #[arg(long, value_name = "C")]
        limit: Option<u32>,
        /// The fake's latency per EWS request in milliseconds (overrides the scenario).
        #[arg(long, value_name = "L")]
        latency_ms: Option<u64>,
        /// Outgoing emails queued in the sending phase (overrides the scenario).
        #[arg(long, value_name = "S")]
        sends: Option<u32>,
        /// Fail a phase that takes longer than this many seconds.
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
        /// The streaming figure instead: --mailboxes (default 1000) subscribed mailboxes
        /// receive --rate mails per second for --mail-secs seconds; creation → row latency
        /// (p50, p99) and idle CPU per mailbox-hour for exsync and Postgres.
        #[arg(long)]
        streaming: bool,
        /// With --streaming: mails created per second.
        #[arg(long, value_name = "R", default_value_t = 20)]
        rate: u32,
        /// With --streaming: seconds mail keeps arriving.
        #[arg(long, default_value_t = 30)]
        mail_secs: u64,
        /// With --streaming: seconds the idle CPU is measured.
        #[arg(long, default_value_t = 60)]
        idle_secs: u64,
    },
    /// Apply the database migrations (also done at the start of `run`).
    Migrate,
    /// Validate the configuration and print the effective settings, secrets redacted.
    CheckConfig,
    /// Create or update profiles and mailboxes declared in a TOML file (one transaction).
    Apply {
        /// The file (format: config/apply.example.toml).
        file: PathBuf,
        /// Validate and compute changes, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show every mailbox: methods, statuses, health and stored counts.
    Status {
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Queue an outgoing email from a mailbox (sent by the mailbox's next outgoing pass).
    Enqueue {
        /// Sending mailbox (must be declared).
        #[arg(long, value_name = "ADDR")]
        from: String,
        /// Recipient (repeat for several).
        #[arg(long, value_name = "ADDR", required = true)]
        to: Vec<String>,
        /// Cc recipient (repeat for several).
        #[arg(long, value_name = "ADDR")]
        cc: Vec<String>,
        /// Subject.
        #[arg(long, default_value = "")]
        subject: String,
        /// Body (plain text).
        #[arg(long, default_value = "")]
        body: String,
    },
    /// Generate a new credential encryption key (32 random bytes, base64).
    GenKey {
        /// Where to write it (mode 0600); `-` prints it to standard output.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Test & Enable: check each configured workload of a mailbox (or of every mailbox of a
    /// profile) with one real request, write the statuses and enable what passed.
    /// Exit 0 when all passed, 1 when any failed, 2 for an unknown address or profile.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["address", "profile"])))]
    TestMailbox {
        /// The mailbox's address.
        address: Option<String>,
        /// Test every mailbox of this profile (concurrently, within its connection limit).
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Check outgoing access (Sent Items) without sending the test message.
        #[arg(long)]
        no_send: bool,
        /// Print JSON (one object; with --profile an array).
        #[arg(long)]
        json: bool,
    },
    /// Move an EWS profile to Microsoft Graph: translate every stored EWS item id
    /// (translateExchangeIds), match To Do tasks, then switch the profile to protocol = "graph".
    /// Resumable and idempotent. Exit 0 when done, 2 for an unknown or ineligible profile.
    MigrateProfile {
        /// The profile's name.
        name: String,
        /// The protocol to move to (only `graph`).
        #[arg(long, value_name = "PROTOCOL")]
        to: String,
        /// Say what would be translated, matched and not, without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Why isn't this mailbox (or item) syncing? Effective settings, each workload's state,
    /// next due time, backoff, alerts, last error; with --item, what happened to one item.
    Explain {
        /// The mailbox's address.
        address: String,
        /// An EWS item id or an Internet Message-ID (`<...@...>`).
        #[arg(long, value_name = "ID")]
        item: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Probe the running daemon's /healthz (exit 0 healthy, 1 not): the container HEALTHCHECK.
    Healthcheck {
        /// URL to GET (default: http://<server.listen>/healthz, loopback for 0.0.0.0).
        #[arg(long)]
        url: Option<String>,
    },
    /// Re-encrypt every stored secret with the current credential key (after setting the new
    /// key as `credential_key_file` and the old one as `previous_credential_key_file`).
    RotateKey {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the fake Exchange (EWS at /EWS/Exchange.asmx, control API under /_fake/) until ctrl-c.
    FakeExchange {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: std::net::SocketAddr,
        /// Seed file (TOML, or JSON by extension): accounts, rights, items, faults.
        #[arg(long, value_name = "FILE")]
        seed: Option<PathBuf>,
        /// Serve HTTPS with a self-signed certificate generated at start.
        #[arg(long)]
        tls: bool,
        /// Serve HTTPS with a certificate issued by a private CA made at start (as on-premises
        /// Exchange usually is); exsync must then trust that CA (`http.ca_file`).
        #[arg(long)]
        private_ca: bool,
        /// The signature on the certificate (the CA's, or the self-signed certificate's).
        #[arg(long, value_enum, default_value = "ecdsa-sha256")]
        signature: CertificateSignatureArg,
        /// An RSA private key (PKCS#8 PEM) for the rsa-* signatures.
        #[arg(long, value_name = "FILE")]
        rsa_key: Option<PathBuf>,
        /// Write the certificate a client must trust (the private CA's, or the self-signed
        /// one) to FILE, for `http.ca_file`.
        #[arg(long, value_name = "FILE")]
        ca_out: Option<PathBuf>,
        /// Whether NTLM over TLS must carry the certificate's channel binding (IIS Extended
        /// Protection).
        #[arg(long, value_enum, default_value = "require")]
        extended_protection: ExtendedProtectionArg,
        /// Also serve Microsoft Graph at /v1.0 over the same mailboxes (control API under
        /// /_fake/graph/).
        #[arg(long)]
        graph: bool,
    },
}

/// `--signature` of `exsync fake-exchange`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CertificateSignatureArg {
    /// ECDSA P-256 with SHA-256.
    EcdsaSha256,
    /// ECDSA P-384 with SHA-384.
    EcdsaSha384,
    /// Ed25519.
    Ed25519,
    /// RSA with SHA-256 (needs `--rsa-key`).
    RsaSha256,
    /// RSA with SHA-384 (needs `--rsa-key`).
    RsaSha384,
    /// RSA with SHA-512 (needs `--rsa-key`).
    RsaSha512,
}

impl From<CertificateSignatureArg> for fake_exchange::CertificateSignature {
    fn from(arg: CertificateSignatureArg) -> Self {
        use fake_exchange::CertificateSignature as S;
        match arg {
            CertificateSignatureArg::EcdsaSha256 => S::EcdsaSha256,
            CertificateSignatureArg::EcdsaSha384 => S::EcdsaSha384,
            CertificateSignatureArg::Ed25519 => S::Ed25519,
            CertificateSignatureArg::RsaSha256 => S::RsaSha256,
            CertificateSignatureArg::RsaSha384 => S::RsaSha384,
            CertificateSignatureArg::RsaSha512 => S::RsaSha512,
        }
    }
}

/// `--extended-protection` of `exsync fake-exchange`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExtendedProtectionArg {
    /// No channel-binding check.
    Off,
    /// A binding sent must be right; none is accepted.
    Allow,
    /// The right binding is required.
    Require,
}

impl From<ExtendedProtectionArg> for fake_exchange::ExtendedProtection {
    fn from(arg: ExtendedProtectionArg) -> Self {
        use fake_exchange::ExtendedProtection as E;
        match arg {
            ExtendedProtectionArg::Off => E::Off,
            ExtendedProtectionArg::Allow => E::Allow,
            ExtendedProtectionArg::Require => E::Require,
        }
    }
}

/// Bad input: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

/// Parse the command line, run the command, and turn the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::Demo { .. } | Command::Bench { .. })
        && std::env::var_os("EXSYNC__LOG__LEVEL").is_none()
        && std::env::var_os("EXSYNC__LOG__FORMAT").is_none()
    {
        // The demo and the benchmark print their own progress; only problems are logged.
        settings.log.level = "warn".to_owned();
        settings.log.format = crate::config::LogFormat::Pretty;
    }
    if let Err(error) = crate::telemetry::init(&settings.log) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            exit_code_for(&error)
        }
    }
}

fn exit_code_for(error: &anyhow::Error) -> ExitCode {
    let bad_input = error.chain().any(|cause| {
        cause.is::<BadInput>()
            || cause.is::<ConfigError>()
            || matches!(
                cause.downcast_ref::<ApplyError>(),
                Some(
                    ApplyError::Invalid { .. }
                        | ApplyError::Syntax { .. }
                        | ApplyError::Unreadable { .. }
                        | ApplyError::Rejected { .. }
                )
            )
            || matches!(
                cause.downcast_ref::<CryptoError>(),
                Some(
                    CryptoError::NoKeyConfigured
                        | CryptoError::KeyEnvMissing { .. }
                        | CryptoError::KeyFileUnreadable { .. }
                        | CryptoError::KeyMalformed { .. }
                )
            )
    });
    if bad_input {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// Run one command with loaded settings.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run => {
            let app = crate::app::App::build(settings).await?;
            let shutdown = tokio_util::sync::CancellationToken::new();
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                crate::app::shutdown_signal().await;
                tracing::info!("shutdown requested");
                trigger.cancel();
            });
            app.run(shutdown).await?;
        }
        Command::Demo {
            once,
            mailboxes_per_profile,
            timeout_secs,
        } => {
            crate::operator::demo::run(
                settings,
                crate::operator::demo::DemoOptions {
                    once,
                    mailboxes_per_profile: usize::from(mailboxes_per_profile),
                    timeout: std::time::Duration::from_secs(timeout_secs),
                },
            )
            .await?;
        }
        Command::Bench {
            scenario,
            json,
            protocol,
            mailboxes,
            items,
            profiles,
            limit,
            latency_ms,
            sends,
            timeout_secs,
            streaming,
            rate,
            mail_secs,
            idle_secs,
        } => {
            if streaming && protocol == crate::operator::bench::Protocol::Graph {
                return Err(BadInput(
                    "--streaming measures EWS streaming notifications; it has no --protocol graph form"
                        .to_owned(),
                )
                .into());
            }
            if streaming {
                let defaults = crate::operator::bench::streaming::StreamingBenchOptions::default();
                let options = crate::operator::bench::streaming::StreamingBenchOptions {
                    mailboxes: mailboxes.unwrap_or(defaults.mailboxes),
                    limit: limit.unwrap_or(defaults.limit),
                    rate_per_s: rate,
                    mail_seconds: mail_secs,
                    idle_seconds: idle_secs,
                    latency_ms: latency_ms.unwrap_or(defaults.latency_ms),
                    phase_timeout: std::time::Duration::from_secs(timeout_secs),
                };
                let report = crate::operator::bench::streaming::run(settings, options)
                    .await
                    .map_err(|e| match e {
                        crate::operator::bench::BenchError::Options(_) => {
                            anyhow::Error::new(BadInput(e.to_string()))
                        }
                        other => other.into(),
                    })?;
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    println!("{report}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut options = crate::operator::bench::BenchOptions::preset(scenario);
            options.protocol = protocol;
            options.mailboxes = mailboxes.unwrap_or(options.mailboxes);
            options.items = items.unwrap_or(options.items);
            options.profiles = profiles.unwrap_or(options.profiles);
            options.limit = limit.unwrap_or(options.limit);
            options.latency_ms = latency_ms.unwrap_or(options.latency_ms);
            options.sends = sends.unwrap_or(options.sends);
            options.phase_timeout = std::time::Duration::from_secs(timeout_secs);
            let report = crate::operator::bench::run(settings, options)
                .await
                .map_err(|e| match e {
                    crate::operator::bench::BenchError::Options(_) => {
                        anyhow::Error::new(BadInput(e.to_string()))
                    }
                    other => other.into(),
                })?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{report}");
            }
        }
        Command::Migrate => {
            let store = connect(&settings).await?;
            store.migrate().await?;
            println!("database migrated");
        }
        Command::CheckConfig => check_config(&settings)?,
        Command::Apply {
            file,
            dry_run,
            json,
        } => {
            let cipher = CredentialCipher::from_settings(&settings.security)?;
            let store = connect(&settings).await?;
            store.migrate().await?;
            let report = apply::apply_file(&store, &cipher, &file, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
        }
        Command::Status { json } => {
            let store = connect(&settings).await?;
            ensure_migrated(&store).await?;
            let statuses = store::mailbox_statuses(&store).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&statuses)?);
            } else {
                print_status_table(&statuses);
            }
        }
        Command::Enqueue {
            from,
            to,
            cc,
            subject,
            body,
        } => {
            for address in to.iter().chain(cc.iter()).chain(std::iter::once(&from)) {
                if !apply::is_plausible_address(&address.to_lowercase()) {
                    return Err(BadInput(format!("{address:?} is not an email address")).into());
                }
            }
            let store = connect(&settings).await?;
            ensure_migrated(&store).await?;
            let (id, message_id) =
                store::outgoing::enqueue(&store, &from, &to, &cc, &subject, &body)
                    .await
                    .map_err(|e| match e.refusal() {
                        Some(reason) => anyhow::Error::new(BadInput(reason)),
                        None => e.into(),
                    })?;
            println!("queued {id} ({message_id})");
        }
        Command::TestMailbox {
            address,
            profile,
            no_send,
            json,
        } => return test_mailbox(settings, address, profile, no_send, json).await,
        Command::Explain {
            address,
            item,
            json,
        } => {
            let cipher = CredentialCipher::from_settings(&settings.security)?;
            let store = connect(&settings).await?;
            ensure_migrated(&store).await?;
            let explanation = crate::operator::explain::explain_with(
                &store,
                &cipher,
                &settings.scheduler,
                &settings.sync,
                &address,
                item.as_deref(),
            )
            .await
            .map_err(|e| match e {
                crate::operator::explain::ExplainError::UnknownMailbox(_) => {
                    anyhow::Error::new(BadInput(e.to_string()))
                }
                other => other.into(),
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                print!("{explanation}");
            }
        }
        Command::MigrateProfile {
            name,
            to,
            dry_run,
            json,
        } => {
            if to != "graph" {
                return Err(BadInput(format!(
                    "--to {to:?}: only \"graph\" is supported (the reverse move is not offered)"
                ))
                .into());
            }
            let cipher = CredentialCipher::from_settings(&settings.security)?;
            let store = connect(&settings).await?;
            ensure_migrated(&store).await?;
            use crate::operator::migrate::{migrate_profile, MigrateError};
            let report = migrate_profile(&store, &cipher, &settings, &name, dry_run)
                .await
                .map_err(|e| match e {
                    MigrateError::UnknownProfile(_) | MigrateError::NotEligible { .. } => {
                        anyhow::Error::new(BadInput(e.to_string()))
                    }
                    other => other.into(),
                })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
        }
        Command::RotateKey { json } => {
            let cipher = CredentialCipher::from_settings(&settings.security)?;
            let store = connect(&settings).await?;
            ensure_migrated(&store).await?;
            let report = store::secrets::reencrypt_all(&store, &cipher).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "re-encrypted {} secret(s) with key {}; {} already used it",
                    report.reencrypted,
                    cipher.current_key_id(),
                    report.already_current
                );
                if settings.security.previous_credential_key_file.is_some() {
                    println!("every secret now uses the current key: remove previous_credential_key_file and restart");
                }
            }
        }
        Command::Healthcheck { url } => return healthcheck(&settings, url).await,
        Command::GenKey { out, force } => gen_key(&out, force)?,
        Command::FakeExchange {
            listen,
            seed,
            tls,
            private_ca,
            signature,
            rsa_key,
            ca_out,
            extended_protection,
            graph,
        } => {
            let rsa_key_pem = match rsa_key {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    BadInput(format!("cannot read --rsa-key {}: {e}", path.display()))
                })?),
                None => None,
            };
            fake_exchange::run_standalone(fake_exchange::StandaloneOptions {
                listen: Some(listen),
                seed,
                tls,
                tls_certificate: fake_exchange::FakeTls {
                    signature: signature.into(),
                    private_ca,
                    rsa_key_pem,
                },
                extended_protection: extended_protection.into(),
                trust_out: ca_out,
                graph,
            })
            .await
            .map_err(|e| match e {
                fake_exchange::FakeError::Seed { .. } | fake_exchange::FakeError::Tls(_) => {
                    anyhow::Error::new(BadInput(e.to_string()))
                }
                other => other.into(),
            })?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn test_mailbox(
    settings: Settings,
    address: Option<String>,
    profile: Option<String>,
    no_send: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::operator::probe::{self, ProbeError, ProbeOptions};
    let app = crate::app::App::build(settings).await?;
    let engine = app.engine();
    let options = ProbeOptions { no_send };
    let bad = |e: ProbeError| match e {
        ProbeError::UnknownMailbox(_) | ProbeError::UnknownProfile(_) => {
            anyhow::Error::new(BadInput(e.to_string()))
        }
        other => other.into(),
    };
    let as_array = profile.is_some();
    let probes = match (address, profile) {
        (_, Some(name)) => probe::test_profile(&engine, &name, options)
            .await
            .map_err(bad)?,
        (Some(address), None) => vec![probe::test_mailbox(&engine, &address, options)
            .await
            .map_err(bad)?],
        (None, None) => return Err(BadInput("give an ADDRESS or --profile NAME".into()).into()),
    };
    let all_passed = probes.iter().all(|p| p.passed);
    if json {
        let text = match probes.first() {
            Some(one) if !as_array => serde_json::to_string_pretty(one)?,
            _ => serde_json::to_string_pretty(&probes)?,
        };
        println!("{text}");
    } else {
        if probes.is_empty() {
            println!("the profile has no mailboxes");
        }
        for probe in &probes {
            print!("{probe}");
        }
        let failed = probes.iter().filter(|p| !p.passed).count();
        println!(
            "{} mailbox(es) tested: {} passed, {failed} failed",
            probes.len(),
            probes.len() - failed
        );
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn healthcheck(settings: &Settings, url: Option<String>) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(url) => url,
        None => {
            let Some(mut listen) = settings.server.listen else {
                return Err(BadInput(
                    "server.listen is not set (EXSYNC__SERVER__LISTEN); give --url".into(),
                )
                .into());
            };
            if listen.ip().is_unspecified() {
                listen.set_ip(match listen.ip() {
                    std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{listen}/healthz")
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("healthy: {url} answered {}", response.status());
            Ok(ExitCode::SUCCESS)
        }
        Ok(response) => {
            eprintln!("unhealthy: {url} answered {}", response.status());
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            eprintln!("unhealthy: cannot reach {url}: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<Store> {
    Store::connect(&settings.database).await.with_context(|| {
        format!(
            "cannot reach the database at {}",
            crate::config::redact_url(settings.database.url.expose_secret())
        )
    })
}

async fn ensure_migrated(store: &Store) -> anyhow::Result<()> {
    if !store.has_schema().await? {
        return Err(
            BadInput("the database has no exsync schema yet: run `exsync migrate`".into()).into(),
        );
    }
    Ok(())
}

fn check_config(settings: &Settings) -> anyhow::Result<()> {
    print!("{}", settings.to_redacted_toml()?);
    let transport =
        exsync_ews::transport::Transport::new(crate::app::transport_settings(&settings.http))?;
    let trust = transport.trust().summary();
    eprintln!(
        "TLS trust: {} system root(s){}",
        trust.system_roots,
        match &settings.http.ca_file {
            Some(path) => format!(" + {} from {}", trust.ca_file_roots, path.display()),
            None => String::new(),
        }
    );
    if let Some(warning) = transport.trust().warning() {
        eprintln!("WARNING: {warning}");
    }
    let key = &settings.security;
    if key.credential_key_file.is_none() && key.credential_key_env.is_none() {
        eprintln!("note: no credential key configured; `apply`, `run` and `demo` need one (see `exsync gen-key`)");
    } else {
        let cipher = CredentialCipher::from_settings(key)?;
        eprintln!("credential key loaded (key id {})", cipher.current_key_id());
    }
    eprintln!("configuration OK");
    Ok(())
}

fn gen_key(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let key = CredentialKey::generate();
    let text = format!("{}\n", key.to_base64().expose_secret());
    if out == std::path::Path::new("-") {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(());
    }
    if out.exists() && !force {
        return Err(BadInput(format!(
            "{} exists; use --force to replace it (values encrypted with the old key then become unreadable)",
            out.display()
        ))
        .into());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    file.write_all(text.as_bytes())?;
    eprintln!(
        "wrote credential key {} (key id {})",
        out.display(),
        key.id_hex()
    );
    Ok(())
}

fn print_status_table(statuses: &[store::MailboxStatus]) {
    if statuses.is_empty() {
        println!("no mailboxes (declare some with `exsync apply FILE`)");
        return;
    }
    let when = |t: &Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".to_owned())
    };
    let shown = |method: &str, status: &str| {
        if method == "none" {
            "-".to_owned()
        } else {
            status.to_owned()
        }
    };
    let address_width = statuses
        .iter()
        .map(|s| s.address.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let profile_width = statuses
        .iter()
        .map(|s| s.profile.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:<aw$}  {:<pw$}  {:<8} {:<8} {:<8} {:<19} {:<19} {:>5} {:>7} {:>6} {:>8} {:>6} {:>11}  LAST ERROR",
        "ADDRESS", "PROFILE", "INCOMING", "OUTGOING", "ACT", "LAST SYNC", "NEXT DUE", "FAILS",
        "EMAILS", "APPTS", "CONTACTS", "TASKS", "OUT P/S/F",
        aw = address_width,
        pw = profile_width,
    );
    for s in statuses {
        println!(
            "{:<aw$}  {:<pw$}  {:<8} {:<8} {:<8} {:<19} {:<19} {:>5} {:>7} {:>6} {:>8} {:>6} {:>11}  {}",
            s.address,
            s.profile,
            shown(&s.incoming, &s.incoming_status),
            shown(&s.outgoing, &s.outgoing_status),
            shown(&s.act, &s.act_status),
            when(&s.last_successful_sync),
            when(&s.next_due),
            s.consecutive_failures,
            s.emails,
            s.appointments,
            s.contacts,
            s.tasks,
            format!("{}/{}/{}", s.outgoing_pending, s.outgoing_sent, s.outgoing_failed),
            s.last_error.as_deref().unwrap_or("-"),
            aw = address_width,
            pw = profile_width,
        );
    }
}

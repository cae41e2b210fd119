//! `lab`: turns a Docker Engine into a PostgreSQL high-availability training lab in one command,
//! and resets or removes it in another.

mod bootstrap;
mod certs;
mod cli;
mod client;
mod engine;
mod error;
mod image;
mod interrupt;
mod lab;
mod labels;
mod lock;
mod plan;
mod progress;
mod render;
mod spec;
mod terminal;
mod workload;

use std::io::Write;

use clap::Parser;
use futures_util::StreamExt;

use cli::{Cli, Command, Create, EtcdCommand, ImageCommand};
use engine::Engine;
use error::{Error, Result};
use interrupt::Interrupt;
use progress::Progress;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    let _ = std::io::stdout().flush();
    // Exit here rather than return: a session's stdin reader may still be blocked in a read
    // that would hold the runtime's shutdown until the next key press.
    std::process::exit(code);
}

/// Runs a command; returns the process's exit code (a remote command's own, for sessions).
async fn run(cli: Cli) -> Result<i32> {
    let progress = Progress::new();
    // Bad input is refused before the daemon is even asked.
    let specs = match &cli.command {
        Command::Create(args) => create_specs(args)?,
        _ => Vec::new(),
    };
    let engine = Engine::connect().await?;
    let session = |code: i64| i32::try_from(code).unwrap_or(1);
    match cli.command {
        Command::Create(args) => create(&engine, &progress, &args, &specs).await?,
        Command::Bootstrap(args) => {
            let interrupt = Interrupt::listen();
            let (engine, progress) = (&engine, &progress);
            let name = &args.lab.name;
            let work = async {
                // Two bootstraps at once would start the same services twice.
                let _lock = lock::exclusive(name, "a bootstrap")?;
                let found = lab::get(engine, name).await?;
                let changed =
                    bootstrap::run(engine, progress, &found, args.stage, Some(&interrupt)).await?;
                finish_bootstrap(engine, progress, name, changed).await
            };
            interrupt::finishing(
                &interrupt,
                progress,
                "the bootstrap's stage in progress",
                work,
            )
            .await?;
        }
        Command::Start(args) if args.nodes.is_empty() => {
            let work = lab::start(&engine, &progress, &args.lab.name);
            finishing(&progress, "the start", work).await?
        }
        Command::Start(args) => {
            let work = lab::start_nodes(&engine, &progress, &args.lab.name, &args.nodes);
            finishing(&progress, "the start", work).await?
        }
        Command::Stop(t) => {
            let work = lab::stop(&engine, &progress, &t.name);
            finishing(&progress, "the stop", work).await?
        }
        Command::Destroy(args) => {
            if args.all {
                let n = lab::destroy_all(&engine, &progress).await?;
                progress.line(format!("{n} lab(s) destroyed"));
            } else if !lab::destroy(&engine, &progress, &args.lab.name).await? {
                progress.line(format!(
                    "there is no lab called {}; nothing to do",
                    args.lab.name
                ));
            }
        }
        Command::Reset(args) => {
            let names = if args.all {
                lab::all(&engine)
                    .await?
                    .into_iter()
                    .map(|l| l.name)
                    .collect()
            } else {
                vec![args.lab.name]
            };
            let interrupt = Interrupt::listen();
            let work = each_lab(&progress, &names, &interrupt, |name, progress| {
                let engine = &engine;
                async move { lab::reset(engine, &progress, &name).await }
            });
            interrupt::finishing(&interrupt, &progress, "the reset", work).await?;
        }
        Command::List => println!("{}", lab::list(&engine).await?),
        Command::Status(args) => {
            let report = lab::status(&engine, &args.lab.name).await?;
            if args.json {
                println!("{}", json(&report, "the status")?);
            } else {
                println!("{}", report.table());
            }
        }
        Command::Check(args) => {
            let report = lab::check(&engine, &args.lab.name).await?;
            if args.json {
                println!("{}", json(&report, "the check")?);
            } else {
                println!("{}", report.text());
            }
            return Ok(if report.done { 0 } else { 1 });
        }
        Command::Connect(t) => println!("{}", lab::connect(&engine, &t.name).await?),
        Command::Ca(args) => {
            let ca = lab::ca(&engine, &args.lab.name).await?;
            match &args.out {
                Some(path) => {
                    lab::write_ca(path, &ca)?;
                    progress.line(format!(
                        "the CA certificate of lab {} is in {}",
                        args.lab.name,
                        path.display()
                    ));
                }
                None => print!("{ca}"),
            }
        }
        Command::Psql(args) => {
            let target = match (args.node, args.replica) {
                (Some(node), _) => lab::PsqlTarget::Node(node),
                (None, true) => lab::PsqlTarget::Replica,
                (None, false) => lab::PsqlTarget::Primary,
            };
            return Ok(session(
                lab::psql(&engine, &args.lab.name, target, &args.args).await?,
            ));
        }
        Command::Shell(args) => {
            return Ok(session(
                lab::shell(&engine, &args.lab.name, &args.node, args.root).await?,
            ));
        }
        Command::Exec(args) => {
            return Ok(session(
                lab::exec(&engine, &args.lab.name, &args.node, args.root, &args.cmd).await?,
            ));
        }
        Command::Logs(args) => {
            return Ok(session(
                lab::logs(
                    &engine,
                    &args.lab.name,
                    &args.node,
                    args.component,
                    args.follow,
                )
                .await?,
            ));
        }
        Command::Kill(a) => {
            let work = lab::kill(&engine, &progress, &a.lab.name, &a.node);
            finishing(&progress, "the drill", work).await?
        }
        Command::Partition(a) => {
            let work = lab::partition(&engine, &progress, &a.lab.name, &a.node);
            finishing(&progress, "the drill", work).await?
        }
        Command::Heal(a) => {
            let work = lab::heal(&engine, &progress, &a.lab.name, &a.node);
            finishing(&progress, "the drill", work).await?
        }
        Command::Switchover(a) => {
            let work = lab::change_leader(&engine, &progress, &a.lab.name, a.to.as_deref(), false);
            finishing(&progress, "the drill", work).await?
        }
        Command::Failover(a) => {
            let work = lab::change_leader(&engine, &progress, &a.lab.name, a.to.as_deref(), true);
            finishing(&progress, "the drill", work).await?
        }
        Command::Etcd(EtcdCommand::Stop(m)) => {
            let work = lab::etcd_members(&engine, &progress, &m.lab.name, &m.nodes, false);
            finishing(&progress, "the drill", work).await?
        }
        Command::Etcd(EtcdCommand::Start(m)) => {
            let work = lab::etcd_members(&engine, &progress, &m.lab.name, &m.nodes, true);
            finishing(&progress, "the drill", work).await?
        }
        Command::Drill(args) => {
            let name = &args.lab.name;
            let output = if args.scenario == lab::Scenario::Pitr {
                if args.reader {
                    return Err(Error::Invalid(
                        "--reader goes with the fault drills; the pitr drill runs no workload"
                            .into(),
                    ));
                }
                let work = lab::pitr_drill(&engine, &progress, name);
                let report = finishing(&progress, "the drill", work).await?;
                if args.json {
                    json(&report, "the drill's report")?
                } else {
                    report.table()
                }
            } else {
                let work = lab::drill(&engine, &progress, name, args.scenario, args.reader);
                let report = finishing(&progress, "the drill", work).await?;
                if args.json {
                    json(&report, "the drill's report")?
                } else {
                    report.table()
                }
            };
            println!("{}", output.trim_end());
        }
        Command::Sync(args) => {
            let on = args.mode == cli::OnOff::On;
            let work = lab::sync(&engine, &progress, &args.lab.name, on, args.strict);
            finishing(&progress, "the switch", work).await?
        }
        Command::Backup(args) => {
            let work = lab::backup(&engine, &progress, &args.lab.name, args.kind);
            finishing(&progress, "the backup", work).await?
        }
        Command::Backups(args) => {
            let list = lab::backups(&engine, &args.lab.name).await?;
            if args.json {
                println!("{}", json(&list, "the backups")?);
            } else {
                print!("{}", lab::backups_table(&list));
            }
        }
        Command::Restore(args) => {
            let work = lab::restore(&engine, &progress, &args.lab.name, &args.time, args.yes);
            let steps = finishing(&progress, "the restore", work).await?;
            let total: f64 = steps.iter().map(|s| s.seconds).sum();
            progress.line(format!(
                "lab {} restored to {} in {total:.1} s",
                args.lab.name, args.time
            ));
        }
        Command::Image(ImageCommand::Build(args)) => {
            let request = image::BuildRequest {
                tag: args.image,
                force: args.force,
                mirror: args.mirror,
            };
            image::build(&engine, &progress, &request).await?
        }
        Command::Image(ImageCommand::Info { image }) => {
            println!("{}", image::info(&engine, &image).await?)
        }
    }
    Ok(0)
}

/// Runs a command that must not stop halfway: Ctrl-C lets it finish, then ends it (130).
async fn finishing<T>(
    progress: &Progress,
    what: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    interrupt::finishing(&Interrupt::listen(), progress, what, work).await
}

/// After `lab bootstrap`: `lab reset` returns a lab to the state it was created in (an
/// exercise's starting point, say), so a snapshot is taken only for a lab without a whole one
/// (a create cut short before its own); then the lab is marked ready.
async fn finish_bootstrap(
    engine: &Engine,
    progress: &Progress,
    name: &str,
    changed: bool,
) -> Result<()> {
    if !lab::has_snapshot(engine, name).await? {
        lab::snapshot(engine, progress, name).await?;
    } else if changed {
        progress.line(
            "the snapshot for `lab reset` is kept: reset returns the lab to the state it was \
             created in",
        );
    } else {
        progress.line("everything was in place; the snapshot for `lab reset` is kept");
    }
    lab::mark(engine, name, labels::READY).await
}

/// `value` as pretty JSON; `what` names it in the error.
fn json(value: &impl serde::Serialize, what: &str) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Io {
        action: format!("encode {what} as JSON"),
        source: e.into(),
    })
}

/// Runs `work` for every named lab (each with its own progress prefix when there are several),
/// as many at once as this machine has cores: a class of labs on a laptop would otherwise
/// compete for two cores and run into the stages' deadlines. A lab that fails does not stop
/// the others; Ctrl-C stops new ones from starting. The end is a line per lab, and an error
/// when any failed (exit 130 when Ctrl-C stopped some).
async fn each_lab<F, Fut>(
    progress: &Progress,
    names: &[String],
    interrupt: &Interrupt,
    work: F,
) -> Result<()>
where
    F: Fn(String, Progress) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if let [name] = names {
        return work(name.clone(), progress.clone()).await;
    }
    let at_once = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Unordered: a lab that ends early frees its place for the next at once, not only once the
    // labs begun before it have ended.
    let mut results: Vec<(usize, Result<()>)> =
        futures_util::stream::iter(names.iter().enumerate().map(|(i, name)| {
            let run = if interrupt.was_pressed() {
                futures_util::future::Either::Left(async { Err(Error::Interrupted) })
            } else {
                futures_util::future::Either::Right(work(name.clone(), progress.for_lab(name)))
            };
            async move { (i, run.await) }
        }))
        .buffer_unordered(at_once)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    let results: Vec<Result<()>> = results.into_iter().map(|(_, r)| r).collect();
    let mut failed = Vec::new();
    for (name, result) in names.iter().zip(&results) {
        match result {
            Ok(()) => progress.line(format!("lab {name}: done")),
            Err(e) => {
                progress.line(format!("lab {name}: FAILED: {e}"));
                failed.push(name.as_str());
            }
        }
    }
    let summary = || {
        format!(
            "{} of {} labs did not finish: {} (each one's error is above)",
            failed.len(),
            names.len(),
            failed.join(", ")
        )
    };
    let interrupted = results
        .iter()
        .any(|r| matches!(r, Err(Error::Interrupted | Error::InterruptedAfter(_))));
    match (failed.is_empty(), interrupted) {
        (true, _) => Ok(()),
        (false, true) => Err(Error::InterruptedAfter(summary())),
        (false, false) => Err(Error::Failed(summary())),
    }
}

/// The names `lab create` makes: the given ones, or NAME-a, NAME-b, ... for --count.
fn lab_names(args: &Create) -> Result<Vec<String>> {
    let Some(count) = args.count else {
        return Ok(args.names.clone());
    };
    if args.names.len() != 1 || !(1..=26).contains(&count) {
        return Err(Error::Invalid(
            "--count takes one --name as the prefix and a count from 1 to 26 (labs are named \
             NAME-a to NAME-z)."
                .into(),
        ));
    }
    Ok((b'a'..)
        .take(count)
        .map(|c| format!("{}-{}", args.names[0], c as char))
        .collect())
}

/// The validated request of every lab `lab create` is to make.
fn create_specs(args: &Create) -> Result<Vec<spec::LabSpec>> {
    let names = lab_names(args)?;
    if let Some(twice) = names
        .iter()
        .enumerate()
        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
    {
        return Err(Error::Invalid(format!(
            "--name {twice} is given twice; each lab needs a name of its own (for one lab per \
             trainee, --count N names them NAME-a, NAME-b, ...)."
        )));
    }
    if names.len() > 1 && (args.network.is_some() || args.subnet.is_some()) {
        return Err(Error::Invalid(
            "--network and --subnet name one lab's network; several labs each get their own. \
             Leave them out, or create the labs one at a time."
                .into(),
        ));
    }
    let password = match (&args.password_file, &args.password) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Error::Invalid(format!(
                    "cannot read the password file {}: {e}. Give a readable file with \
                     --password-file, or the password in LAB_PASSWORD.",
                    file.display()
                ))
            })?;
            text.lines().next().unwrap_or("").to_string()
        }
        (None, Some(password)) => password.clone(),
        (None, None) => spec::DEFAULT_PASSWORD.to_string(),
    };
    names
        .iter()
        .map(|name| {
            spec::Request {
                name,
                topology: args.topology,
                nodes: args.nodes,
                postgres: args.postgres,
                etcd: args.etcd,
                dedicated_etcd: args.dedicated_etcd,
                repo: args.repo,
                haproxy: match (args.haproxy, args.no_haproxy) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                network: args.network.as_deref(),
                subnet: args.subnet.as_deref(),
                image: &args.image,
                publish: &args.publish,
                password: &password,
                md5: args.md5,
                tls: args.tls,
                force: args.force,
            }
            .validate()
        })
        .collect()
}

async fn create(
    engine: &Engine,
    progress: &Progress,
    args: &Create,
    specs: &[spec::LabSpec],
) -> Result<()> {
    if args.dry_run {
        println!("{}", lab::dry_run(engine, specs, args.replace).await?);
        return Ok(());
    }
    let interrupt = Interrupt::listen();
    let options = lab::CreateOptions {
        stage: args.stage,
        replace: args.replace,
        keep_on_failure: args.keep_on_failure,
    };
    // The image is built once, before several labs race for it.
    if specs.len() > 1 {
        let mut stop = interrupt.clone();
        tokio::select! {
            built = image::ensure(engine, progress, &args.image) => built?,
            _ = stop.pressed() => return Err(Error::Interrupted),
        }
    }
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    each_lab(progress, &names, &interrupt, |name, progress| {
        let spec = specs
            .iter()
            .find(|s| s.name == name)
            .expect("a spec per name");
        let (options, interrupt) = (&options, &interrupt);
        async move { lab::create(engine, &progress, spec, options, interrupt).await }
    })
    .await
}

//! `lab`: turns a Docker Engine into a PostgreSQL high-availability training lab in one command,
//! and resets or removes it in another.

use std::io::Write;

use clap::FromArgMatches;

use pgha_lab::cli::{
    self, ClassCommand, Cli, Command, Create, EtcdCommand, ExerciseCommand, ImageCommand,
};
use pgha_lab::engine::Engine;
use pgha_lab::error::{Error, Result};
use pgha_lab::fleet::{self, Fleet};
use pgha_lab::interrupt::{self, Interrupt};
use pgha_lab::lock::{self, LabLock};
use pgha_lab::progress::Progress;
use pgha_lab::{exercise, image, lab, model, plot, render, serve, spec, terminal};

#[tokio::main]
async fn main() {
    // The TLS library's provider, chosen once: a build where two are compiled in (the tests'
    // binary, with a dev-dependency's) cannot pick one itself, and an engine over tcp:// with TLS
    // would then fail.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let matches = cli::command().get_matches();
    if let Some(refusal) = cli::all_and_name(&matches) {
        eprintln!("error: {refusal}");
        std::process::exit(2);
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    // The exit below would cut short the removal of the locks let go of: the next command
    // must find them free.
    lock::settle().await;
    let _ = std::io::stdout().flush();
    // Exit here rather than return: a session's stdin reader may still be blocked in a read
    // that would hold the runtime's shutdown until the next key press.
    std::process::exit(code);
}

/// Runs a command; returns the process's exit code (a remote command's own, for sessions).
async fn run(cli: Cli) -> Result<i32> {
    // What needs no Docker Engine is done before one is asked for.
    match &cli.command {
        Command::Completions(args) => {
            // Into a buffer, then out as every command prints: a reader that has gone (`| head`)
            // ends it quietly.
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cli::command(), "lab", &mut script);
            terminal::out(&String::from_utf8_lossy(&script));
            return Ok(0);
        }
        Command::Man(args) => {
            man(args)?;
            return Ok(0);
        }
        _ => {}
    }
    let progress = Progress::new();
    let fleet = Fleet::resolve(&cli.engines, cli.all_engines)?;
    // Bad input is refused before the daemon is even asked.
    let specs = match &cli.command {
        Command::Create(args) => {
            let (publish, remote) = fleet.default_publish();
            let mut specs = create_specs(args, &lab_names(args)?, &publish, remote)?;
            let names = fleet.names();
            let reach = fleet::publish_host(&args.publish_host, &names[0], &names)?;
            for spec in &mut specs {
                spec.reach.clone_from(&reach);
            }
            specs
        }
        _ => Vec::new(),
    };
    let plot = match &cli.command {
        Command::Drill(args) => drill_input(args)?,
        _ => None,
    };
    // The commands over every engine given.
    match &cli.command {
        Command::List(args) => return list(&fleet, &progress, args).await,
        Command::Engines(args) => return engines(&fleet, &progress, args).await,
        Command::Create(args) if fleet.several() => {
            return create_over(&fleet, &progress, args).await.map(|()| 0);
        }
        Command::Class(ClassCommand::Sheet(args)) => return sheet(&fleet, &progress, args).await,
        Command::Class(ClassCommand::Rotate(args)) => return rotate(&fleet, &progress, args).await,
        Command::Reset(a) if a.all || a.class.is_some() => {
            return reset_all(&fleet, &progress, a).await;
        }
        Command::Destroy(a) if a.all || a.class.is_some() => {
            return destroy_all(&fleet, &progress, a).await;
        }
        Command::Exercise(command) => return exercise(&fleet, &progress, command).await,
        _ => {}
    }
    let engine = match lab_of(&cli.command) {
        Some(name) => fleet.holding(name).await?,
        None => {
            fleet
                .only(&format!("lab {}", command_name(&cli.command)))
                .await?
        }
    };
    let (engine, progress) = (&engine, &progress);
    match cli.command {
        Command::Create(args) => create(engine, progress, &args, &specs).await?,
        Command::Bootstrap(args) => bootstrap(engine, progress, &args).await?,
        Command::Start(args) => start(engine, progress, &args).await?,
        Command::Stop(args) => stop(engine, progress, &args).await?,
        Command::Destroy(args) => destroy(engine, progress, &args).await?,
        Command::Reset(args) => reset(engine, progress, &args).await?,
        Command::Status(args) => {
            let report = lab::status(engine, &args.lab.name).await?;
            print_report(args.json, &report, "the status", |r| r.table())?;
        }
        Command::Watch(args) => return lab::watch(engine, &args.lab.name).await,
        Command::Serve(args) => {
            let options = serve::Options {
                listen: args.listen,
                names: args.names,
                token_file: args.token_file,
            };
            return serve::serve(engine, options).await;
        }
        Command::Check(args) => {
            let report = lab::check(engine, &args.lab.name).await?;
            print_report(args.json, &report, "the check", |r| r.text())?;
            return Ok(if report.passed() { 0 } else { 1 });
        }
        Command::Connect(args) => {
            let connection = lab::connect(engine, &args.lab.name).await?;
            print_report(args.json, &connection, "the connection strings", |c| {
                c.text()
            })?;
        }
        Command::Ca(args) => ca(engine, progress, &args).await?,
        Command::Psql(args) => return psql(engine, args).await,
        Command::Shell(args) => {
            let code = lab::shell(engine, &args.lab.name, &args.node, args.root).await?;
            return Ok(session(code));
        }
        Command::Exec(args) => {
            let code = lab::exec(engine, &args.lab.name, &args.node, args.root, &args.cmd);
            return Ok(session(code.await?));
        }
        Command::Metrics(args) => {
            let answer = lab::metrics(engine, &args.lab.name, &args.query).await?;
            if args.json {
                terminal::out(&json(&answer.result, "the query's result")?);
            } else {
                terminal::out(answer.table().trim_end());
            }
        }
        Command::Logs(args) => {
            let (name, node) = (&args.lab.name, &args.node);
            let (component, follow, tail) = (args.component, args.follow, args.tail);
            let code = lab::logs(engine, name, node, component, follow, tail).await?;
            return Ok(session(code));
        }
        Command::Kill(a) => node_fault(engine, progress, &a, NodeFault::Kill).await?,
        Command::Partition(a) => node_fault(engine, progress, &a, NodeFault::Partition).await?,
        Command::Heal(a) => node_fault(engine, progress, &a, NodeFault::Heal).await?,
        Command::Switchover(a) => change_leader(engine, progress, &a, false).await?,
        Command::Failover(a) => change_leader(engine, progress, &a, true).await?,
        Command::Etcd(EtcdCommand::Stop(m)) => etcd(engine, progress, &m, false).await?,
        Command::Etcd(EtcdCommand::Start(m)) => etcd(engine, progress, &m, true).await?,
        Command::Drill(args) => run_drill(engine, progress, &args, plot.as_ref()).await?,
        Command::Sync(args) => {
            let lock = hold(
                engine,
                progress,
                &args.lab,
                "switching the replication mode",
            )
            .await?;
            let on = args.mode == cli::OnOff::On;
            let work = lab::sync(engine, progress, &lock, on, args.strict);
            let report = finishing(progress, "the switch", work).await?;
            json_only(args.json, &report, "the replication mode")?;
        }
        Command::Backup(args) => {
            let lock = hold(engine, progress, &args.lab, "a backup").await?;
            let work = lab::backup(engine, progress, &lock, args.kind);
            let newest = finishing(progress, "the backup", work).await?;
            json_only(args.json, &newest, "the backup")?;
        }
        Command::Backups(args) => {
            let list = lab::backups(engine, &args.lab.name).await?;
            print_report(args.json, &list, "the backups", |l| lab::backups_table(l))?;
        }
        Command::Restore(args) => restore(engine, progress, &args).await?,
        Command::Image(ImageCommand::Build(args)) => {
            let request = image::BuildRequest {
                tag: args.image,
                force: args.force,
                mirror: args.mirror,
            };
            image::build(engine, progress, &request).await?
        }
        Command::Image(ImageCommand::Info(args)) => {
            let info = image::info(engine, &args.image).await?;
            print_report(args.json, &info, "the image's description", |i| i.table())?;
        }
        // Done above, before an engine was asked for, or over every engine given.
        Command::Completions(_)
        | Command::Man(_)
        | Command::List(_)
        | Command::Engines(_)
        | Command::Class(_)
        | Command::Exercise(_) => {}
    }
    Ok(0)
}

/// `lab bootstrap`: Ctrl-C stops it after the stages in progress.
async fn bootstrap(engine: &Engine, progress: &Progress, args: &cli::Bootstrap) -> Result<()> {
    let lock = hold(engine, progress, &args.lab, "a bootstrap").await?;
    let interrupt = Interrupt::listen();
    let work = lab::bootstrap(engine, progress, &lock, args.stage, &interrupt);
    let what = "the bootstrap's stage in progress";
    interrupt::finishing(&interrupt, progress, what, work).await
}

/// `lab start [NODE...]`: the whole lab, or the nodes named.
async fn start(engine: &Engine, progress: &Progress, args: &cli::Start) -> Result<()> {
    let lock = hold(engine, progress, &args.lab, "a start").await?;
    let report = if args.nodes.is_empty() {
        finishing(progress, "the start", lab::start(engine, progress, &lock)).await?
    } else {
        let work = lab::start_nodes(engine, progress, &lock, &args.nodes);
        finishing(progress, "the start", work).await?
    };
    json_only(args.json, &report, "the start")
}

/// `lab stop [NODE...]`: the whole lab, or the nodes named.
async fn stop(engine: &Engine, progress: &Progress, args: &cli::Stop) -> Result<()> {
    let lock = hold(engine, progress, &args.lab, "a stop").await?;
    let report = if args.nodes.is_empty() {
        finishing(progress, "the stop", lab::stop(engine, progress, &lock)).await?
    } else {
        let work = lab::stop_nodes(engine, progress, &lock, &args.nodes);
        finishing(progress, "the stop", work).await?
    };
    json_only(args.json, &report, "the stop")
}

/// With --json, `report` on stdout for scripts; without, nothing more: the step lines on
/// stderr already said it.
fn json_only(as_json: bool, report: &impl serde::Serialize, what: &str) -> Result<()> {
    if as_json {
        terminal::out(&json(report, what)?);
    }
    Ok(())
}

/// `lab man [--out-dir DIR]`: lab.1 on stdout, or every page into DIR.
fn man(args: &cli::Man) -> Result<()> {
    let cmd = cli::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(cmd, dir))
                .map_err(|e| Error::Io {
                    action: format!("write the man pages into {}", dir.display()),
                    source: e,
                })?;
            eprintln!("man pages written to {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(Error::io("render the man page"))?;
            terminal::out(&String::from_utf8_lossy(&page));
        }
    }
    Ok(())
}

/// `lab psql`: on the node named, the primary or a replica; its exit code.
async fn psql(engine: &Engine, args: cli::Psql) -> Result<i32> {
    let target = match (args.node, args.replica) {
        (Some(node), _) => lab::PsqlTarget::Node(node),
        (None, true) => lab::PsqlTarget::Replica,
        (None, false) => lab::PsqlTarget::Primary,
    };
    let code = lab::psql(engine, &args.lab.name, target, &args.args).await?;
    Ok(session(code))
}

/// The fault commands on one node.
#[derive(Clone, Copy)]
enum NodeFault {
    Kill,
    Partition,
    Heal,
}

/// `lab kill|partition|heal NODE`, run to its end even on Ctrl-C.
async fn node_fault(
    engine: &Engine,
    progress: &Progress,
    a: &cli::NodeArg,
    fault: NodeFault,
) -> Result<()> {
    let what = match fault {
        NodeFault::Kill => "killing",
        NodeFault::Partition => "partitioning",
        NodeFault::Heal => "healing",
    };
    let lock = hold(engine, progress, &a.lab, &format!("{what} {}", a.node)).await?;
    let (node, as_json) = (&a.node, a.json);
    match fault {
        NodeFault::Kill => drill(progress, as_json, lab::kill(engine, progress, &lock, node)).await,
        NodeFault::Partition => {
            let work = lab::partition(engine, progress, &lock, node);
            drill(progress, as_json, work).await
        }
        NodeFault::Heal => drill(progress, as_json, lab::heal(engine, progress, &lock, node)).await,
    }
}

/// `lab restore --time T`.
async fn restore(engine: &Engine, progress: &Progress, args: &cli::Restore) -> Result<()> {
    let lock = hold(engine, progress, &args.lab, "a restore").await?;
    let work = lab::restore(engine, progress, &lock, &args.time, args.yes);
    let steps = finishing(progress, "the restore", work).await?;
    let total: f64 = steps.iter().map(|s| s.seconds).sum();
    progress.line(format!(
        "lab {} restored to {} in {total:.1} s",
        args.lab.name, args.time
    ));
    Ok(())
}

/// A remote command's exit code as this process's.
fn session(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(1)
}

/// Takes the lock of the lab a command changes, for `purpose` ("a stop"): refused at once while
/// another command changes it, or waited for with --wait.
async fn hold(
    engine: &Engine,
    progress: &Progress,
    lab: &cli::Changing,
    purpose: &str,
) -> Result<LabLock> {
    lock::lab(engine, &lab.name, purpose, lab.wait, progress, None).await
}

/// Prints a report as JSON or as `text` shows it.
fn print_report<T: serde::Serialize>(
    as_json: bool,
    report: &T,
    what: &str,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    if as_json {
        terminal::out(&json(report, what)?);
    } else {
        terminal::out(text(report).trim_end());
    }
    Ok(())
}

/// Runs a command that must not stop halfway: Ctrl-C lets it finish, then ends it (130).
async fn finishing<T>(
    progress: &Progress,
    what: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    interrupt::finishing(&Interrupt::listen(), progress, what, work).await
}

/// A fault command (kill, partition, heal, switchover, failover, etcd stop|start), run to its
/// end even on Ctrl-C; with `as_json`, its report on stdout too (the step lines stay on stderr).
async fn drill(
    progress: &Progress,
    as_json: bool,
    work: impl std::future::Future<Output = Result<lab::FaultReport>>,
) -> Result<()> {
    let report = finishing(progress, "the drill", work).await?;
    json_only(as_json, &report, "the fault's report")
}

/// `lab switchover` or `lab failover`.
async fn change_leader(
    engine: &Engine,
    progress: &Progress,
    args: &cli::Handover,
    failover: bool,
) -> Result<()> {
    let what = if failover {
        "a failover"
    } else {
        "a switchover"
    };
    let lock = hold(engine, progress, &args.lab, what).await?;
    let to = args.to.as_deref();
    let work = lab::change_leader(engine, progress, &lock, to, failover);
    drill(progress, args.json, work).await
}

/// `lab etcd stop|start NODE...`.
async fn etcd(engine: &Engine, progress: &Progress, m: &cli::Members, start: bool) -> Result<()> {
    let what = if start {
        "starting etcd"
    } else {
        "stopping etcd"
    };
    let lock = hold(
        engine,
        progress,
        &m.lab,
        &format!("{what} on {}", m.nodes.join(", ")),
    )
    .await?;
    let work = lab::etcd_members(engine, progress, &lock, &m.nodes, start);
    drill(progress, m.json, work).await
}

/// `lab drill`'s bad input, refused before the daemon is asked and the lab locked: flags the
/// pitr drill has no use for, and a `--plot` path that cannot take a picture. The picture's
/// file, checked.
fn drill_input(args: &cli::Drill) -> Result<Option<plot::Target>> {
    if args.scenario.fault().is_none() {
        for (given, flag) in [(args.reader, "--reader"), (args.plot.is_some(), "--plot")] {
            if given {
                return Err(Error::Invalid(format!(
                    "{flag} goes with the fault drills; the pitr drill runs no workload"
                )));
            }
        }
    }
    args.plot.as_deref().map(plot::Target::check).transpose()
}

/// `lab drill SCENARIO`: a fault drill, or the pitr drill; `plot`, where to draw a fault
/// drill's timeline.
async fn run_drill(
    engine: &Engine,
    progress: &Progress,
    args: &cli::Drill,
    plot: Option<&plot::Target>,
) -> Result<()> {
    let what = "the drill's report";
    match args.scenario.fault() {
        None => {
            let lock = hold(engine, progress, &args.lab, "the pitr drill").await?;
            let work = lab::pitr_drill(engine, progress, &lock);
            let report = finishing(progress, "the drill", work).await?;
            print_report(args.json, &report, what, |r| r.table())
        }
        Some(fault) => {
            let purpose = format!("the {} drill", fault.name());
            let lock = hold(engine, progress, &args.lab, &purpose).await?;
            let work = lab::drill(engine, progress, &lock, fault, args.reader);
            let report = finishing(progress, "the drill", work).await?;
            let drawn = plot.map(|target| (target, target.write(&report.picture())));
            // The report is printed even when its picture could not be written: the drill ran.
            print_report(args.json, &report, what, |r| r.table())?;
            if let Some((target, written)) = drawn {
                written?;
                progress.line(format!(
                    "the drill's timeline is drawn in {}",
                    target.path().display()
                ));
            }
            Ok(())
        }
    }
}

/// `lab destroy` of one lab.
async fn destroy(engine: &Engine, progress: &Progress, args: &cli::Destroy) -> Result<()> {
    let lock = hold(engine, progress, &args.lab, "a destroy").await?;
    if !lab::destroy(engine, progress, &lock).await? {
        progress.line(format!(
            "there is no lab called {}; nothing to do",
            args.lab.name
        ));
    }
    Ok(())
}

/// `lab destroy --all`: every lab on every engine given; a lab another command is changing is
/// left alone and reported, as is an engine that does not answer.
async fn destroy_all(fleet: &Fleet, progress: &Progress, args: &cli::Destroy) -> Result<i32> {
    let (engines, down) = fleet.reach().await;
    fleet::report_down(progress, &down);
    let keep = of_class(args.class.as_deref());
    let mut found = Vec::new();
    for engine in &engines {
        let mut names = lab::all_names(engine).await?;
        names.retain(|n| keep(n));
        found.push((engine, names));
    }
    let listed: Vec<String> = found
        .iter()
        .flat_map(|(e, names)| names.iter().map(|n| on_engine(n, e, fleet)))
        .collect();
    if listed.is_empty() {
        return Ok(nothing_to_do(progress, args.class.as_deref(), fleet, &down));
    }
    if !args.yes {
        let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        ask_for_all("destroy", args.class.as_deref(), "removes", &listed, fleet)?;
    }
    let mut destroyed = 0;
    let mut busy = Vec::new();
    for (engine, names) in found {
        let done = lab::destroy_all(engine, progress, names).await?;
        destroyed += done.destroyed.len();
        busy.extend(done.busy);
    }
    progress.line(format!("{destroyed} lab(s) destroyed"));
    if !busy.is_empty() {
        let busy: Vec<String> = busy
            .iter()
            .map(|(lab, holder)| format!("{lab} ({holder})"))
            .collect();
        return Err(Error::Busy(format!(
            "{} lab(s) were left as they are because another command is changing them: {}. Run \
             `lab destroy --all` again once those end.",
            busy.len(),
            busy.join(", ")
        )));
    }
    Ok(fleet::exit_code(&down))
}

/// Says that no lab (of the class) is on the engines given; the exit code: 1 when an engine did
/// not answer, as the labs may be there.
fn nothing_to_do(
    progress: &Progress,
    class: Option<&str>,
    fleet: &Fleet,
    down: &[fleet::Down],
) -> i32 {
    let of = class.map(|c| format!(" of class {c}")).unwrap_or_default();
    progress.line(format!(
        "there are no labs{of} on {}; nothing to do",
        where_(fleet)
    ));
    fleet::exit_code(down)
}

/// Which labs `--class PREFIX` takes (without it, `--all`: every lab).
fn of_class(class: Option<&str>) -> impl Fn(&str) -> bool + '_ {
    move |name| class.is_none_or(|c| lab::in_class(name, c))
}

/// "alice" on one engine, "alice (teach2)" when a command spans several.
fn on_engine(lab: &str, engine: &Engine, fleet: &Fleet) -> String {
    if fleet.several() {
        format!("{lab} ({})", engine.name())
    } else {
        lab.to_string()
    }
}

/// "this Docker Engine", or the engines' names.
fn where_(fleet: &Fleet) -> String {
    if fleet.several() {
        format!("the engines {}", fleet.names().join(", "))
    } else {
        "this Docker Engine".into()
    }
}

/// `lab reset` of one lab.
async fn reset(engine: &Engine, progress: &Progress, args: &cli::Reset) -> Result<()> {
    // Waited for (--wait) before anything is done: Ctrl-C meanwhile just ends the command.
    let lock = hold(engine, progress, &args.lab, "a reset").await?;
    finishing(progress, "the reset", lab::reset(engine, progress, &lock)).await
}

/// `lab reset --all`: every lab on every engine given, each under its own lock; a lab another
/// command is changing, or an engine that does not answer, is reported and the others reset.
async fn reset_all(fleet: &Fleet, progress: &Progress, args: &cli::Reset) -> Result<i32> {
    let (found, down) = labs_on(fleet, progress, of_class(args.class.as_deref())).await?;
    let at = one_engine_each(&found, "reset")?;
    if at.is_empty() {
        return Ok(nothing_to_do(progress, args.class.as_deref(), fleet, &down));
    }
    let names: Vec<String> = at.keys().cloned().collect();
    if !args.yes {
        let listed: Vec<String> = at.iter().map(|(n, e)| on_engine(n, e, fleet)).collect();
        let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        ask_for_all(
            "reset",
            args.class.as_deref(),
            "puts back to their first state, losing what was done in them,",
            &listed,
            fleet,
        )?;
    }
    let held = Held {
        purpose: "a reset",
        wait: args.lab.wait,
        what: "the reset",
    };
    each_locked(
        progress,
        &at,
        &names,
        held,
        |engine, lock, progress| async move { lab::reset(engine, &progress, &lock).await },
    )
    .await?;
    Ok(fleet::exit_code(&down))
}

/// How `each_locked` takes each lab's lock, and what Ctrl-C lets finish.
struct Held<'a> {
    purpose: &'a str,
    wait: bool,
    what: &'a str,
}

/// `work` on each lab of `names` (on its engine in `at`) under the lab's lock, as many at once
/// as `each_lab` runs; Ctrl-C lets the labs in progress finish.
async fn each_locked<'a, F, Fut>(
    progress: &Progress,
    at: &std::collections::BTreeMap<String, &'a Engine>,
    names: &[String],
    held: Held<'_>,
    work: F,
) -> Result<()>
where
    F: Fn(&'a Engine, LabLock, Progress) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let interrupt = Interrupt::listen();
    let job = lab::each_lab(progress, names, &interrupt, |name, progress| {
        let (interrupt, engine, work) = (&interrupt, at[&name], &work);
        let (purpose, wait) = (held.purpose, held.wait);
        async move {
            let lock = lock::lab(engine, &name, purpose, wait, &progress, Some(interrupt)).await?;
            work(engine, lock, progress).await
        }
    });
    interrupt::finishing(&interrupt, progress, held.what, job).await
}

/// Each lab found with its engine; a name on two engines is refused, for a command over
/// several (`verb` them one engine at a time).
fn one_engine_each<'a>(
    found: &'a [(Engine, Vec<model::Lab>)],
    verb: &str,
) -> Result<std::collections::BTreeMap<String, &'a Engine>> {
    let mut at: std::collections::BTreeMap<String, &Engine> = Default::default();
    for (engine, labs) in found {
        for lab in labs {
            if let Some(other) = at.insert(lab.name.clone(), engine) {
                return Err(Error::Invalid(format!(
                    "a lab called {} is on two engines ({} and {}); {verb} them one engine at \
                     a time with --engine.",
                    lab.name,
                    other.name(),
                    engine.name()
                )));
            }
        }
    }
    Ok(at)
}

/// `lab exercise ...`: of one lab, or with --all / --class of every lab on the engines given.
async fn exercise(fleet: &Fleet, progress: &Progress, command: &ExerciseCommand) -> Result<i32> {
    use lab::exercise as ex;
    match command {
        ExerciseCommand::List(args) => {
            print_report(args.json, &exercise::listed(), "the exercises", |l| {
                exercise::list_text(l)
            })?;
            Ok(0)
        }
        ExerciseCommand::Start(a) if a.many.any() => {
            let (found, down) = labs_on(fleet, progress, of_class(a.many.class.as_deref())).await?;
            let at = one_engine_each(&found, "start exercises on")?;
            if at.is_empty() {
                return Ok(nothing_to_do(
                    progress,
                    a.many.class.as_deref(),
                    fleet,
                    &down,
                ));
            }
            let names: Vec<String> = at.keys().cloned().collect();
            let purpose = format!("the exercise {}", a.exercise.name());
            let held = Held {
                purpose: &purpose,
                wait: a.lab.wait,
                what: "the exercise's start",
            };
            each_locked(
                progress,
                &at,
                &names,
                held,
                |engine, lock, progress| async move {
                    let symptom = ex::start(engine, &progress, &lock, a.exercise).await?;
                    terminal::out(&format!("{}: {symptom}", lock.lab()));
                    Ok(())
                },
            )
            .await?;
            Ok(fleet::exit_code(&down))
        }
        ExerciseCommand::Start(a) => {
            let engine = fleet.holding(&a.lab.name).await?;
            let purpose = format!("the exercise {}", a.exercise.name());
            let lock = hold(&engine, progress, &a.lab, &purpose).await?;
            let work = ex::start(&engine, progress, &lock, a.exercise);
            terminal::out(&finishing(progress, "the exercise's start", work).await?);
            Ok(0)
        }
        ExerciseCommand::Status(a) if a.many.any() => {
            let (found, down) = labs_on(fleet, progress, of_class(a.many.class.as_deref())).await?;
            let mut rows = Vec::new();
            for (engine, labs) in &found {
                for lab in labs {
                    rows.push(match ex::judged(engine, lab).await {
                        Ok(status) => ex::Row::of(&lab.name, status),
                        Err(e) => ex::Row::failed(&lab.name, &e),
                    });
                }
            }
            print_report(a.json, &rows, "the exercises' status", |r| ex::table(r))?;
            let code = ex::class_code(&rows);
            Ok(if code == 0 {
                fleet::exit_code(&down)
            } else {
                code
            })
        }
        ExerciseCommand::Status(a) => {
            let engine = fleet.holding(&a.lab.name).await?;
            let status = ex::status(&engine, &a.lab.name).await?;
            print_report(a.json, &status, "the exercise's status", |s| s.text())?;
            Ok(if status.solved { 0 } else { 1 })
        }
        ExerciseCommand::Hint(a) => {
            let engine = fleet.holding(&a.lab.name).await?;
            terminal::out(&ex::hint(&engine, &a.lab.name).await?);
            Ok(0)
        }
        ExerciseCommand::Answer(a) => {
            let engine = fleet.holding(&a.lab.name).await?;
            let said = ex::answer(&engine, &a.lab.name, a.ids.clone()).await?;
            progress.line(said);
            Ok(0)
        }
        ExerciseCommand::Stop(a) if a.many.any() => {
            let (found, down) = labs_on(fleet, progress, of_class(a.many.class.as_deref())).await?;
            let at = one_engine_each(&found, "stop exercises on")?;
            let mut names = Vec::new();
            for (engine, labs) in &found {
                for lab in labs {
                    if ex::running(engine, lab).await?.is_some() {
                        names.push(lab.name.clone());
                    }
                }
            }
            if names.is_empty() {
                progress.line(format!(
                    "no exercise runs on {}; nothing to do",
                    where_(fleet)
                ));
                return Ok(fleet::exit_code(&down));
            }
            let held = Held {
                purpose: "stopping an exercise",
                wait: a.lab.wait,
                what: "the exercise's stop",
            };
            each_locked(
                progress,
                &at,
                &names,
                held,
                |engine, lock, progress| async move {
                    progress.line(ex::stop(engine, &progress, &lock).await?);
                    Ok(())
                },
            )
            .await?;
            Ok(fleet::exit_code(&down))
        }
        ExerciseCommand::Stop(a) => {
            let engine = fleet.holding(&a.lab.name).await?;
            let lock = hold(&engine, progress, &a.lab, "stopping an exercise").await?;
            let work = ex::stop(&engine, progress, &lock);
            progress.line(finishing(progress, "the exercise's stop", work).await?);
            Ok(0)
        }
    }
}

/// `lab list`: the labs of every engine given (with an engine column when there are several);
/// an engine that does not answer is said on stderr, the others' labs still listed, exit 1.
async fn list(fleet: &Fleet, progress: &Progress, args: &cli::List) -> Result<i32> {
    let (engines, down) = fleet.reach().await;
    fleet::report_down(progress, &down);
    let mut labs = Vec::new();
    for engine in &engines {
        labs.extend(lab::list(engine).await?);
    }
    if args.json {
        terminal::out(&json(&labs, "the labs")?);
    } else if !(labs.is_empty() && engines.is_empty()) {
        terminal::out(lab::list_text(&labs, fleet.several()).trim_end());
    }
    Ok(fleet::exit_code(&down))
}

/// `lab engines`: every engine given (without --engine: the default one and every Docker
/// context's), answering or not.
async fn engines(fleet: &Fleet, progress: &Progress, args: &cli::List) -> Result<i32> {
    let every;
    let fleet = if fleet.several() {
        fleet
    } else {
        every = Fleet::resolve(&[], true)?;
        &every
    };
    let rows = lab::engines(fleet).await;
    if args.json {
        terminal::out(&json(&rows, "the engines")?);
    } else {
        terminal::out(lab::engines_text(&rows).trim_end());
    }
    let down: Vec<fleet::Down> = rows
        .iter()
        .filter_map(|r| {
            let error = r.error.clone()?;
            Some(fleet::Down {
                engine: r.engine.clone(),
                error,
            })
        })
        .collect();
    fleet::report_down(progress, &down);
    Ok(fleet::exit_code(&down))
}

/// Each engine given that answers, with its labs that `keep` keeps by name; those that did not
/// answer are said on stderr and returned.
async fn labs_on(
    fleet: &Fleet,
    progress: &Progress,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<(Engine, Vec<model::Lab>)>, Vec<fleet::Down>)> {
    let (engines, down) = fleet.reach().await;
    fleet::report_down(progress, &down);
    let mut found = Vec::new();
    for engine in engines {
        let mut labs = model::all(&engine).await?;
        labs.retain(|l| keep(&l.name));
        found.push((engine, labs));
    }
    Ok((found, down))
}

/// The labs of a class (`--name PREFIX`, or `--all`) on every engine given that answers, with
/// their engine; none at all is an error saying how to make one.
async fn class_labs(
    fleet: &Fleet,
    progress: &Progress,
    class: &cli::Class,
) -> Result<(Vec<(Engine, Vec<model::Lab>)>, Vec<fleet::Down>)> {
    let keep = |name: &str| class.all || lab::in_class(name, &class.prefix);
    let (found, down) = labs_on(fleet, progress, keep).await?;
    if found.iter().all(|(_, labs)| labs.is_empty()) {
        let prefix = &class.prefix;
        let which = if class.all {
            format!("There are no labs on {}", where_(fleet))
        } else {
            format!(
                "No lab is called {prefix}, nor {prefix}-a, {prefix}-b and so on, on {}",
                where_(fleet)
            )
        };
        return Err(Error::Invalid(format!(
            "{which}. Make a class with `lab create --count N --name {prefix} --access ssh`, or \
             name another with --name PREFIX (or --all)."
        )));
    }
    Ok((found, down))
}

/// `lab class sheet`: a line per trainee, over every engine given.
async fn sheet(fleet: &Fleet, progress: &Progress, args: &cli::Sheet) -> Result<i32> {
    let (found, down) = class_labs(fleet, progress, &args.class).await?;
    let mut rows = Vec::new();
    for (engine, labs) in &found {
        rows.extend(lab::access::sheet(engine, labs, args.host.as_deref()).await?);
    }
    if args.csv {
        terminal::out(&render::access::sheet_csv(&rows));
    } else {
        print_report(args.json, &rows, "the sheet", |r| {
            render::access::sheet_table(r)
        })?;
    }
    Ok(fleet::exit_code(&down))
}

/// `lab class rotate`: each lab of the class, on every engine given, under its own lock; a lab
/// that fails or is busy does not stop the others.
async fn rotate(fleet: &Fleet, progress: &Progress, args: &cli::Rotate) -> Result<i32> {
    let (found, down) = class_labs(fleet, progress, &args.class).await?;
    let mut at: std::collections::BTreeMap<String, &Engine> = Default::default();
    for (engine, labs) in &found {
        for name in lab::access::with_access(engine, progress, labs).await? {
            at.insert(name, engine);
        }
    }
    let names: Vec<String> = at.keys().cloned().collect();
    let held = Held {
        purpose: "a rotation of its credentials",
        wait: args.wait,
        what: "the rotation",
    };
    each_locked(
        progress,
        &at,
        &names,
        held,
        |engine, lock, progress| async move {
            lab::access::rotate(engine, &progress, &lock)
                .await
                .map(drop)
        },
    )
    .await?;
    Ok(fleet::exit_code(&down))
}

/// Asks before `lab destroy --all|--class` or `lab reset --all|--class` (`command`) changes
/// several labs, naming them; without a terminal, refuses (exit 2) and says how to go on.
fn ask_for_all(
    command: &str,
    class: Option<&str>,
    does: &str,
    labs: &[&str],
    fleet: &Fleet,
) -> Result<()> {
    let what = match class {
        Some(c) => format!(
            "lab {command} --class {c} {does} every lab of class {c} on {}: {} ({} lab(s))",
            where_(fleet),
            labs.join(", "),
            labs.len()
        ),
        None => format!(
            "lab {command} --all {does} every lab on {}, another trainee's included: {} ({} \
             lab(s))",
            where_(fleet),
            labs.join(", "),
            labs.len()
        ),
    };
    let cancelled = format!("{command} cancelled; nothing was changed");
    terminal::confirm(&what, "--yes (or name one lab with -n NAME)", &cancelled)
}

/// `lab ca [--out FILE]`.
async fn ca(engine: &Engine, progress: &Progress, args: &cli::Ca) -> Result<()> {
    let ca = lab::ca(engine, &args.lab.name).await?;
    match &args.out {
        Some(path) => {
            lab::write_ca(path, &ca)?;
            progress.line(format!(
                "the CA certificate of lab {} is in {}",
                args.lab.name,
                path.display()
            ));
        }
        None => terminal::out(&ca),
    }
    Ok(())
}

/// `value` as pretty JSON; `what` names it in the error.
fn json(value: &impl serde::Serialize, what: &str) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Io {
        action: format!("encode {what} as JSON"),
        source: e.into(),
    })
}

/// The names `lab create` makes: the given ones, or a class's for --count (NAME-a, NAME-b, ...).
fn lab_names(args: &Create) -> Result<Vec<String>> {
    let Some(count) = args.count else {
        return Ok(args.names.clone());
    };
    match args.names.as_slice() {
        [prefix] => spec::class_names(prefix, count),
        _ => Err(Error::Invalid(
            "--count takes one --name, the prefix of the labs' names (NAME-a, NAME-b, ...).".into(),
        )),
    }
}

/// The validated request of every lab `lab create` is to make, `names`, published on `--publish`
/// or else on `publish`, the default of the engine they go to (`remote`: on another machine).
fn create_specs(
    args: &Create,
    names: &[String],
    publish: &str,
    remote: bool,
) -> Result<Vec<spec::LabSpec>> {
    let publish = args.publish.as_deref().unwrap_or(publish);
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
    let entries = access_entries(args, names)?;
    // Beyond loopback every lab's postgres role gets a password of its own, so that one
    // trainee's cannot open another's database.
    let beyond = publish
        .parse::<std::net::IpAddr>()
        .is_ok_and(|a| !a.is_loopback());
    let exposed = args.access.is_some() && beyond;
    // A lab on another machine's network gets one too, unless a password is given: the
    // course's `postgres` would be open to that whole network.
    let given = args.password.is_some() || args.password_file.is_some();
    let generate = exposed || (beyond && remote && !given);
    if exposed && given {
        return Err(Error::Invalid(format!(
            "--access with --publish {publish} gives each lab a postgres password of its own, so that \
             no trainee can open another's database; --password, --password-file and \
             LAB_PASSWORD would give them all one. Leave the password out (the sheet lists \
             each lab's), or publish on 127.0.0.1.",
        )));
    }
    names
        .iter()
        .zip(entries)
        .map(|(name, entry)| {
            let generated = if generate {
                Some(lab::access::password()?)
            } else {
                None
            };
            let password = generated.as_deref().unwrap_or(&password);
            let spec = spec::Request {
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
                monitoring: args.monitoring,
                network: args.network.as_deref(),
                subnet: args.subnet.as_deref(),
                image: &args.image,
                publish,
                password,
                md5: args.md5,
                tls: args.tls,
                force: args.even_etcd,
            }
            .validate()?;
            Ok(spec::LabSpec {
                access: entry,
                ..spec
            })
        })
        .collect()
}

/// How each lab's trainee gets in (`--access`, `--trainee-key`), in the order of `names`;
/// every key read and checked before anything is made.
fn access_entries(args: &Create, names: &[String]) -> Result<Vec<Option<spec::Entry>>> {
    Ok(match (args.access, &args.trainee_key) {
        (None, _) => vec![None; names.len()],
        (Some(cli::Access::Ssh), None) => vec![Some(spec::Entry::Password); names.len()],
        (Some(cli::Access::Ssh), Some(path)) => lab::access::trainee_keys(path, names)?
            .into_iter()
            .map(|key| Some(spec::Entry::Key(key)))
            .collect(),
    })
}

async fn create(
    engine: &Engine,
    progress: &Progress,
    args: &Create,
    specs: &[spec::LabSpec],
) -> Result<()> {
    if args.dry_run {
        terminal::out(&lab::dry_run(engine, specs, args.replace).await?);
        return Ok(());
    }
    let interrupt = Interrupt::listen();
    let options = lab::CreateOptions {
        stage: args.stage,
        replace: args.replace,
        keep_on_failure: args.keep_on_failure,
        machine: None,
    };
    // The image is built once, before several labs race for it, and before any lock is
    // taken: the locks are containers of it.
    let mut stop = interrupt.clone();
    let ready = async {
        lab::spread::ship_from_default(engine, progress, &args.image).await?;
        image::ensure(engine, progress, &args.image).await
    };
    tokio::select! {
        built = ready => built?,
        _ = stop.pressed() => return Err(Error::Interrupted),
    }
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    lab::each_lab(progress, &names, &interrupt, |name, progress| {
        let spec = specs
            .iter()
            .find(|s| s.name == name)
            .expect("a spec per name");
        create_one(
            engine, name, progress, spec, &options, args.wait, &interrupt,
        )
    })
    .await
}

/// The lab a command works on, for finding its engine among several (None: a command over no
/// one lab).
fn lab_of(command: &Command) -> Option<&str> {
    let name = match command {
        Command::Bootstrap(a) => &a.lab.name,
        Command::Start(a) => &a.lab.name,
        Command::Stop(a) => &a.lab.name,
        Command::Destroy(a) => &a.lab.name,
        Command::Reset(a) => &a.lab.name,
        Command::Status(a) | Command::Check(a) | Command::Backups(a) => &a.lab.name,
        Command::Watch(a) => &a.lab.name,
        Command::Connect(a) => &a.lab.name,
        Command::Ca(a) => &a.lab.name,
        Command::Psql(a) => &a.lab.name,
        Command::Shell(a) => &a.lab.name,
        Command::Exec(a) => &a.lab.name,
        Command::Metrics(a) => &a.lab.name,
        Command::Logs(a) => &a.lab.name,
        Command::Kill(a) | Command::Partition(a) | Command::Heal(a) => &a.lab.name,
        Command::Switchover(a) | Command::Failover(a) => &a.lab.name,
        Command::Etcd(EtcdCommand::Stop(m) | EtcdCommand::Start(m)) => &m.lab.name,
        Command::Drill(a) => &a.lab.name,
        Command::Sync(a) => &a.lab.name,
        Command::Backup(a) => &a.lab.name,
        Command::Restore(a) => &a.lab.name,
        Command::Create(_)
        | Command::List(_)
        | Command::Engines(_)
        | Command::Serve(_)
        | Command::Class(_)
        | Command::Exercise(_)
        | Command::Image(_)
        | Command::Completions(_)
        | Command::Man(_) => return None,
    };
    Some(name)
}

/// The command's name as typed, for messages.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Create(_) => "create",
        Command::Serve(_) => "serve",
        Command::Class(_) => "class",
        Command::Image(_) => "image",
        _ => "this command",
    }
}

/// `lab create` over several engines (see `lab::spread`): every engine answers and the class
/// fits before anything is made; each engine's labs then made at the same time as the others'.
async fn create_over(fleet: &Fleet, progress: &Progress, args: &Create) -> Result<()> {
    let names = lab_names(args)?;
    let engines = fleet.connect_all().await?;
    let spread = lab::spread::place(&engines, &names).await?;
    // Each lab's request for the engine it goes to (its default publish address).
    let mut specs = Vec::new();
    for lab::spread::Share { engine, labs, .. } in &spread.shares {
        let publish = engine.target().default_publish().to_string();
        let remote = !engine.is_local();
        let reach = fleet::publish_host(&args.publish_host, engine.name(), &fleet.names())?;
        for mut spec in create_specs(args, labs, &publish, remote)? {
            spec.reach.clone_from(&reach);
            specs.push(spec);
        }
    }
    for lab::spread::Share { engine, labs, .. } in &spread.shares {
        progress.line(format!(
            "{} lab(s) on {}: {}",
            labs.len(),
            engine.name(),
            labs.join(", ")
        ));
    }
    if args.dry_run {
        for lab::spread::Share { engine, labs, .. } in &spread.shares {
            let mine: Vec<spec::LabSpec> = specs
                .iter()
                .filter(|s| labs.contains(&s.name))
                .cloned()
                .collect();
            terminal::out(&format!("on {}:", engine.name()));
            terminal::out(&lab::dry_run(engine, &mine, args.replace).await?);
        }
        return Ok(());
    }
    let interrupt = Interrupt::listen();
    let mut stop = interrupt.clone();
    tokio::select! {
        shipped = lab::spread::ship_image(&spread, &engines, progress, &args.image) => shipped?,
        _ = stop.pressed() => return Err(Error::Interrupted),
    }
    let options = lab::CreateOptions {
        stage: args.stage,
        replace: args.replace,
        keep_on_failure: args.keep_on_failure,
        machine: None,
    };
    let (specs, options, interrupt) = (&specs, &options, &interrupt);
    lab::spread::create(
        &spread,
        progress,
        interrupt,
        |engine, name, progress, machine| {
            let spec = specs
                .iter()
                .find(|s| s.name == name)
                .expect("a spec per name");
            let options = lab::CreateOptions {
                machine: Some(machine),
                ..options.clone()
            };
            async move {
                create_one(
                    &engine, name, progress, spec, &options, args.wait, interrupt,
                )
                .await
            }
        },
    )
    .await
}

/// One lab of a create, under its lock.
async fn create_one(
    engine: &Engine,
    name: String,
    progress: Progress,
    spec: &spec::LabSpec,
    options: &lab::CreateOptions,
    wait: bool,
    interrupt: &Interrupt,
) -> Result<()> {
    let purpose = "a create";
    let lock = lock::lab(engine, &name, purpose, wait, &progress, Some(interrupt)).await?;
    lab::create(engine, &progress, spec, options, interrupt, &lock).await
}

//! `lab`: turns a Docker Engine into a PostgreSQL high-availability training lab in one command,
//! and resets or removes it in another.

mod bootstrap;
mod cli;
mod engine;
mod error;
mod image;
mod lab;
mod labels;
mod lock;
mod plan;
mod progress;
mod render;
mod spec;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, Create, ImageCommand};
use engine::Engine;
use error::{Error, Result};
use progress::Progress;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let progress = Progress::new();
    let engine = Engine::connect().await?;
    match cli.command {
        Command::Create(args) => create(&engine, &progress, &args).await,
        Command::Bootstrap(args) => {
            let lab = lab::get(&engine, &args.name).await?;
            bootstrap::run(&engine, &progress, &lab, args.stage).await?;
            Ok(())
        }
        Command::Start(t) => lab::start(&engine, &progress, &t.name).await,
        Command::Stop(t) => lab::stop(&engine, &progress, &t.name).await,
        Command::Destroy(args) => {
            if args.all {
                let n = lab::destroy_all(&engine, &progress).await?;
                progress.line(format!("{n} lab(s) destroyed"));
            } else if !lab::destroy(&engine, &progress, &args.name).await? {
                progress.line(format!(
                    "there is no lab called {}; nothing to do",
                    args.name
                ));
            }
            Ok(())
        }
        Command::List => {
            println!("{}", lab::list(&engine).await?);
            Ok(())
        }
        Command::Status(t) => {
            println!("{}", lab::status(&engine, &t.name).await?);
            Ok(())
        }
        Command::Image(ImageCommand::Build(args)) => {
            let request = image::BuildRequest {
                tag: args.image,
                force: args.force,
                mirror: args.mirror,
            };
            image::build(&engine, &progress, &request).await
        }
        Command::Image(ImageCommand::Info { image }) => {
            println!("{}", image::info(&engine, &image).await?);
            Ok(())
        }
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

async fn create(engine: &Engine, progress: &Progress, args: &Create) -> Result<()> {
    let names = lab_names(args)?;
    if names.len() > 1 && (args.network.is_some() || args.subnet.is_some()) {
        return Err(Error::Invalid(
            "--network and --subnet name one lab's network; several labs each get their own. \
             Leave them out, or create the labs one at a time."
                .into(),
        ));
    }
    let specs = names
        .iter()
        .map(|name| {
            spec::Request {
                name,
                nodes: args.nodes,
                postgres: args.postgres,
                network: args.network.as_deref(),
                subnet: args.subnet.as_deref(),
                image: &args.image,
                publish: &args.publish,
                password: &args.password,
                md5: args.md5,
                force: args.force,
            }
            .validate()
        })
        .collect::<Result<Vec<_>>>()?;
    let options = lab::CreateOptions {
        stage: args.stage,
        dry_run: args.dry_run,
        replace: args.replace,
        keep_on_failure: args.keep_on_failure,
    };
    if let [spec] = specs.as_slice() {
        return lab::create(engine, progress, spec, &options).await;
    }
    // The image is built once, before the labs race for it.
    if !args.dry_run {
        image::ensure(engine, progress, &args.image).await?;
    }
    let results = futures_util::future::join_all(specs.iter().map(|spec| {
        let progress = progress.for_lab(&spec.name);
        let options = &options;
        async move { lab::create(engine, &progress, spec, options).await }
    }))
    .await;
    let failed: Vec<String> = specs
        .iter()
        .zip(results)
        .filter_map(|(spec, r)| r.err().map(|e| format!("lab {}: {e}", spec.name)))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(failed.join("\n")))
    }
}

//! pgha-lab: turns Docker Engines into PostgreSQL high-availability training labs. The `lab`
//! binary is one front on this library; integration tests call it too.
//!
//! Layers, each importing only those below it: the commands (`lab`); the services inside the
//! nodes and their clients (`services`); the lab model read from labels, its locks and the
//! engine it lives on (`model`, `lock`, `engine`); pure planning and rendering (`spec`, `plan`,
//! `render`, `predict`, `timeline`, `fault`, `certs`, `labels`), and `plot`, which draws a
//! drill's timeline to a file. `serve` is a front like `cli`: the class on a web page, over the
//! commands. `cli` holds the command line's definitions; `progress`,
//! `terminal` and `interrupt` are how commands talk to a person, and `table` is the one look of
//! every table they print.

pub mod certs;
pub mod cli;
pub mod client;
pub mod engine;
pub mod error;
pub mod exercise;
pub mod fault;
pub mod fleet;
pub mod image;
pub mod interrupt;
pub mod lab;
pub mod labels;
pub mod lock;
pub mod model;
pub mod plan;
pub mod plot;
pub mod predict;
pub mod progress;
pub mod render;
pub mod serve;
pub mod services;
pub mod shell;
pub mod spec;
pub mod store;
pub mod table;
pub mod terminal;
pub mod timeline;
pub mod workload;

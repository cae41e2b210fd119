//! Integration tests against the real Docker Engine: the image, the lab lifecycle, the
//! bootstrapped cluster and the training drills. Run them with scripts/test.sh, which builds the
//! image first.

mod access;
mod client_drills;
mod cluster;
mod common;
mod course;
mod engines;
mod exercises;
mod faults;
mod help;
mod image;
mod labs;
mod lifecycle;
mod locks;
mod monitoring;
mod plot;
mod serve;
mod tls;
mod topologies;
mod watch;

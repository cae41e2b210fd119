//! `lab watch` on one colocated lab (HAProxy in front). On a terminal (tmux, 80x24) it shows
//! the nodes and a switchover's events, and `q` gives the shell back with the terminal's
//! settings as they were. Piped, it states the lab in its first line, then logs a killed
//! primary's failover, the new leader within 2 s of the moment Patroni's own log says it took
//! the leader lock. A lab destroyed while it watches is said, and the watch goes on.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

const LAB: &str = "itwatch";

/// `lab watch` on the test's lab with its stdout piped (killed when dropped).
fn piped() -> Proc {
    Proc::start(env!("CARGO_BIN_EXE_lab"), &["watch", "--name", LAB])
}

/// Seconds since midnight of a time of day "HH:MM:SS.mmm" (or with a comma, as Patroni logs).
fn seconds(time: &str) -> f64 {
    let parts: Vec<f64> = time
        .replace(',', ".")
        .split(':')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("a time of day: {time}"))
        })
        .collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// The leader `from` handed over to, as "leader changed: FROM -> TO" in `text` says.
fn leader_in(text: &str, from: &str) -> String {
    let said = format!("leader changed: {from} -> ");
    let at = text
        .find(&said)
        .unwrap_or_else(|| panic!("{said:?} in {text}"));
    text[at + said.len()..]
        .split(' ')
        .next()
        .expect("the new leader's name")
        .to_string()
}

/// A tmux server of this test's own (its own socket), so that no other session is touched.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "w"])
    }

    async fn shows(&self, secs: u64, text: &str) -> String {
        eventually(secs, &format!("the tmux pane showing {text:?}"), || async {
            let screen = self.screen();
            screen.contains(text).then_some(screen)
        })
        .await
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[tokio::test]
async fn watch_logs_a_failover_within_two_seconds_draws_a_switchover_and_survives_its_lab() {
    let (d, _sweep) = setup(&[LAB], None).await;
    lab_ok(&[
        "create",
        "--name",
        LAB,
        "--topology",
        "colocated",
        "--subnet",
        "10.247.0.0/24",
    ]);

    // On a terminal: tmux, 80x24, the shell's settings compared before and after.
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is needed for this test; scripts/test.sh installs it"
    );
    let tmux = Tmux {
        socket: format!("itwatch-{}", std::process::id()),
    };
    let settings = std::env::temp_dir().join(format!("itwatch-stty-{}", std::process::id()));
    let settings = settings.to_string_lossy().into_owned();
    tmux.run(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "w",
        "-x",
        "80",
        "-y",
        "24",
        "env PS1='ready$ ' bash --norc --noprofile -i",
    ]);
    let command = format!(
        "stty -g > {settings}.before; {} watch --name {LAB}; echo \"watch exited $?\"; stty -g > {settings}.after",
        env!("CARGO_BIN_EXE_lab")
    );
    tmux.run(&["send-keys", "-t", "w", &command, "Enter"]);
    let screen = tmux.shows(20, "pgha1  running    primary").await;
    for text in [
        " lab itwatch ",
        "┌ nodes",
        "┌ events",
        " etcd     ",
        " HAProxy  ",
    ] {
        assert!(screen.contains(text), "{text:?}:\n{screen}");
    }
    assert!(screen.lines().all(|l| l.chars().count() <= 80), "{screen}");
    lab_ok(&["switchover", "--name", LAB]);
    let screen = tmux.shows(10, "leader changed: pgha1 -> ").await;
    assert!(screen.contains("timeline switched: 1 -> 2"), "{screen}");
    let leader = leader_in(&screen, "pgha1");
    tmux.run(&["send-keys", "-t", "w", "q"]);
    let screen = tmux.shows(10, "watch exited 0").await;
    assert!(
        !screen.contains("┌ nodes"),
        "the alternate screen was left:\n{screen}"
    );
    let before = std::fs::read_to_string(format!("{settings}.before"));
    // The shell makes the file before stty writes in it.
    let after = eventually(5, "the settings after", || async {
        std::fs::read_to_string(format!("{settings}.after"))
            .ok()
            .filter(|s| !s.is_empty())
    })
    .await;
    assert_eq!(before.ok(), Some(after), "the terminal's settings changed");
    let _ = std::fs::remove_file(format!("{settings}.before"));
    let _ = std::fs::remove_file(format!("{settings}.after"));
    drop(tmux);

    // Piped: a first line stating the lab, then one line per event.
    let watch = piped();
    let first = watch.line(20, "lab itwatch: ").await;
    for part in [
        &format!("leader {leader} (timeline 2)"),
        "pgha1 replica streaming",
        "etcd 3 of 3 up (quorum 2)",
    ] {
        assert!(first.contains(part), "{part:?} in {first}");
    }
    // HAProxy may still count the old primary up for a check or two after the switchover.
    let primary_port = first
        .split("HAProxy 5000 → ")
        .nth(1)
        .and_then(|rest| rest.split(", 5001").next())
        .unwrap_or_else(|| panic!("HAProxy's routing in {first}"));
    assert!(primary_port.contains(&leader), "{first}");
    lab_ok(&["kill", &leader, "--name", LAB]);
    let changed = watch
        .line(10, &format!("leader changed: {leader} -> "))
        .await;
    let (killed, leader) = (leader.clone(), leader_in(&changed, &leader));
    assert!(changed.ends_with("(timeline 3)"), "{changed}");
    // Patroni's own moment: its log line on the new leader, in UTC as the watch's times are.
    let promoted = exec_ok(
        &d,
        &at(LAB, &leader),
        "postgres",
        "grep 'promoted self to leader' /var/log/patroni/patroni.log | tail -n 1",
    )
    .await;
    let patroni_at = promoted.split(' ').nth(1).expect("the log line's time");
    let watch_at = changed.split(' ').next().expect("the watch line's time");
    let mut delay = seconds(watch_at) - seconds(patroni_at);
    if delay < -43_200.0 {
        delay += 86_400.0; // midnight between the two
    }
    eprintln!(
        "Patroni took the leader lock at {patroni_at}; lab watch logged it at {watch_at}: {delay:.3} s later"
    );
    assert!(
        (0.0..=2.0).contains(&delay),
        "the new leader logged {delay:.3} s after Patroni's change ({promoted}):\n{}",
        watch.all()
    );
    watch.line(5, &format!("member down: {killed}")).await;
    watch.line(5, &format!("etcd member down: {killed}")).await;
    watch
        .line(10, &format!("HAProxy switched: 5000 -> {leader}"))
        .await;
    let log = watch.all();
    // One line per event, each stamped HH:MM:SS.mmm.
    for line in log.lines() {
        let stamp = line.split(' ').next().unwrap_or_default();
        assert!(
            stamp.len() == 12 && stamp.as_bytes()[8] == b'.',
            "{line}\n{log}"
        );
    }
    drop(watch);

    // A lab destroyed while it is watched: said, and the watch goes on.
    let mut watch = piped();
    watch.line(20, "lab itwatch: ").await;
    lab_ok(&["destroy", "--name", LAB]);
    watch
        .line(10, "lab gone: no container of lab itwatch is left")
        .await;
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        watch.child.try_wait().expect("its state").is_none(),
        "lab watch ended:\n{}",
        watch.all()
    );
}

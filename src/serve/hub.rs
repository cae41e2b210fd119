//! One poller per lab, shared by every page that shows it: `lab watch`'s poller (every node at
//! most once per EVERY) and event detection, its latest view published on a watch channel.
//! A lab's poller starts when its first viewer subscribes and stops when its last one leaves:
//! a lab nobody looks at costs nothing. Its course step (`lab check`, which asks much more of
//! the nodes) is judged when the poller starts, every COURSE_EVERY after and REJUDGE_AFTER an
//! event, and its records (last reset, last drill) read with it; a judgement in progress stops
//! with the hub.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::rows::{Action, Course, LabView, Logged};
use crate::engine::Engine;
use crate::lab::watch::events::{Detector, clock};
use crate::lab::watch::poll::Poller;
use crate::lab::{self, LastDrill};
use crate::model;

/// How often a lab's nodes are asked, at most, while its own page (or its trainee's) is open.
pub const EVERY: Duration = Duration::from_secs(2);
/// How often, and how lightly, while it shows only as a row of the class page: a class of ten
/// at EVERY cost more than a core of a two-core machine, at this pace some 4 % (bench.sh).
const CLASS_EVERY: Duration = Duration::from_secs(10);
/// How often a lab's course step is judged again while its page is open, and while it shows
/// only on the class page (a judgement costs the nodes about 1.8 s of CPU).
const COURSE_EVERY: Duration = Duration::from_secs(60);
const CLASS_COURSE_EVERY: Duration = Duration::from_secs(300);
/// How long after an event (a leader change, a node down) the course is judged again: the
/// events of one failover come within seconds, and are judged once.
const REJUDGE_AFTER: Duration = Duration::from_secs(10);

/// The labs being watched, and the actions last run on each.
#[derive(Clone)]
pub struct Hubs {
    engine: Engine,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    hubs: HashMap<String, Arc<watch::Sender<LabView>>>,
    /// How many of each lab's viewers are its own page or its trainee's, which need the
    /// close pace (EVERY); the class page alone gets CLASS_EVERY.
    close: HashMap<String, Arc<AtomicUsize>>,
    /// Kept beyond a hub's life, so that a page opened later shows how the last action ended.
    actions: HashMap<String, Action>,
    /// Each lab's last drill's picture, served apart from the view (it is large).
    pictures: HashMap<String, Arc<String>>,
}

impl Hubs {
    pub fn new(engine: &Engine) -> Hubs {
        Hubs {
            engine: engine.clone(),
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it leaves plain maps, still good to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A view of lab `name` that follows it, its poller started if none runs. The caller has
    /// checked that the lab exists.
    pub fn subscribe(&self, name: &str) -> watch::Receiver<LabView> {
        let mut inner = self.lock();
        if let Some(tx) = inner.hubs.get(name) {
            return tx.subscribe();
        }
        let mut view = LabView::new(name);
        view.action = inner.actions.get(name).cloned();
        let (tx, rx) = watch::channel(view);
        let tx = Arc::new(tx);
        inner.hubs.insert(name.to_string(), Arc::clone(&tx));
        tokio::spawn(run(self.clone(), name.to_string(), tx));
        rx
    }

    /// `subscribe` for a page of the lab's own (the instructor's or the trainee's): while the
    /// guard lives, the lab is asked at the close pace.
    pub fn subscribe_close(&self, name: &str) -> (watch::Receiver<LabView>, Close) {
        let rx = self.subscribe(name);
        let count = Arc::clone(self.lock().close.entry(name.to_string()).or_default());
        count.fetch_add(1, Ordering::SeqCst);
        (rx, Close(count))
    }

    fn close_viewers(&self, name: &str) -> usize {
        self.lock()
            .close
            .get(name)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// How many labs are polled now.
    pub fn polled(&self) -> usize {
        self.lock().hubs.len()
    }

    /// Sets lab `name`'s action, on its page if it is watched.
    pub fn act(&self, name: &str, action: Action) {
        let mut inner = self.lock();
        inner.actions.insert(name.to_string(), action.clone());
        if let Some(tx) = inner.hubs.get(name) {
            tx.send_modify(|v| v.action = Some(action));
        }
    }

    /// Changes lab `name`'s view, if it is watched.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut LabView)) {
        if let Some(tx) = self.lock().hubs.get(name) {
            tx.send_modify(change);
        }
    }

    /// Lab `name`'s last drill's picture, as last read.
    pub fn picture(&self, name: &str) -> Option<Arc<String>> {
        self.lock().pictures.get(name).cloned()
    }

    /// Reads lab `name`'s records, then judges its course again, each into its view as soon
    /// as it is had (the records take a moment, the judgement seconds).
    pub async fn refresh(&self, name: &str) {
        self.read_records(name).await;
        let course = course(&self.engine, name).await;
        self.update(name, |v| match course {
            Ok(c) => {
                v.course = Some(c);
                v.course_error = None;
            }
            Err(e) => v.course_error = Some(e),
        });
    }

    /// Reads lab `name`'s records (last reset, last drill and its picture), into its view.
    pub async fn read_records(&self, name: &str) {
        let (last_reset, last_drill) = records(&self.engine, name).await;
        if let Some(svg) = last_drill.as_ref().and_then(|d| d.svg.clone()) {
            self.lock().pictures.insert(name.to_string(), Arc::new(svg));
        }
        self.update(name, |v| {
            v.last_reset = last_reset;
            v.last_drill = last_drill.map(|d| LastDrill { svg: None, ..d });
        });
    }

    /// Ends lab `name`'s hub if nobody watches it any more; whether it did.
    fn leave_if_unwatched(&self, name: &str, tx: &watch::Sender<LabView>) -> bool {
        let mut inner = self.lock();
        // Under the lock: nobody can subscribe between the count and the removal.
        if tx.receiver_count() > 0 {
            return false;
        }
        inner.hubs.remove(name);
        true
    }
}

/// A close viewer of a lab, counted while it lives.
pub struct Close(Arc<AtomicUsize>);

impl Drop for Close {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The pace for `close` viewers: (asked every, lightly, course judged every).
fn pace(close: usize) -> (Duration, bool, Duration) {
    if close > 0 {
        (EVERY, false, COURSE_EVERY)
    } else {
        (CLASS_EVERY, true, CLASS_COURSE_EVERY)
    }
}

/// A lab's hub: polls it while anyone watches.
async fn run(hubs: Hubs, name: String, tx: Arc<watch::Sender<LabView>>) {
    let lab = match model::get(&hubs.engine, &name).await {
        Ok(lab) => lab,
        Err(e) => {
            // Said on the page; the hub ends once its viewers go, and the next one tries anew.
            let why = e.to_string();
            tx.send_modify(|v| v.course_error = Some(why));
            unwatched(&hubs, &name, &tx).await;
            return;
        }
    };
    let mut paced = pace(hubs.close_viewers(&name));
    let mut poller = Poller::new(&hubs.engine, lab, paced.0);
    poller.set_pace(paced.0, paced.1);
    let mut courses = tokio::time::interval(paced.2);
    courses.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let first = tokio::select! {
        first = poller.first() => first,
        () = unwatched(&hubs, &name, &tx) => return,
    };
    let Ok(first) = first else {
        unwatched(&hubs, &name, &tx).await;
        return;
    };
    let mut detector = Detector::new(&first);
    // A page of the lab's own opening: the pace is looked at again within a second.
    let mut looked = tokio::time::interval(Duration::from_secs(1));
    looked.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tx.send_modify(|v| v.snapshot = Some(first));
    // The course's judgements run beside the polling; dropped with the hub, they stop asking
    // the nodes once nobody watches.
    let mut judging = JoinSet::new();
    // When the course is judged again after something happened (a failover changes it).
    let mut rejudge: Option<Instant> = None;
    loop {
        // A lab page opened or closed since: the pace follows it.
        let now = pace(hubs.close_viewers(&name));
        if now != paced {
            poller.set_pace(now.0, now.1);
            if now.2 != paced.2 {
                courses = tokio::time::interval_at(Instant::now() + now.2, now.2);
                courses.set_missed_tick_behavior(MissedTickBehavior::Delay);
            }
            paced = now;
        }
        let rejudged = async {
            match rejudge {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            next = poller.next() => {
                // The poller only fails on a bug of its own (a probe task that panicked).
                let Ok(snap) = next else { break };
                let at = clock(SystemTime::now());
                let events: Vec<Logged> =
                    detector.next(&snap).iter().map(|e| Logged::of(&at, e)).collect();
                if !events.is_empty() && rejudge.is_none() {
                    rejudge = Some(Instant::now() + REJUDGE_AFTER);
                }
                tx.send_if_modified(|v| {
                    let changed = v.snapshot.as_ref() != Some(&snap) || !events.is_empty();
                    v.snapshot = Some(snap);
                    v.log(events);
                    changed
                });
            }
            _ = looked.tick() => {}
            () = rejudged => {
                rejudge = None;
                courses.reset_immediately();
            }
            _ = courses.tick() => {
                while judging.try_join_next().is_some() {}
                if judging.is_empty() {
                    let (hubs, name) = (hubs.clone(), name.clone());
                    judging.spawn(async move { hubs.refresh(&name).await });
                }
            }
            () = unwatched(&hubs, &name, &tx) => return,
        }
    }
    unwatched(&hubs, &name, &tx).await;
}

/// Returns once the hub has been ended for want of viewers.
async fn unwatched(hubs: &Hubs, name: &str, tx: &watch::Sender<LabView>) {
    loop {
        tx.closed().await;
        if hubs.leave_if_unwatched(name, tx) {
            return;
        }
        // Someone subscribed meanwhile: wait for them to go too.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn records(engine: &Engine, name: &str) -> (Option<lab::LastReset>, Option<lab::LastDrill>) {
    let Ok(lab) = model::get(engine, name).await else {
        return (None, None);
    };
    let (reset, drill) = tokio::join!(lab::last_reset(engine, &lab), lab::last_drill(engine, &lab));
    (reset.ok().flatten(), drill.ok().flatten())
}

/// Lab `name`'s course, as `lab check` judges it.
pub async fn course(engine: &Engine, name: &str) -> Result<Course, String> {
    lab::check(engine, name)
        .await
        .map(|report| Course {
            report,
            at: lab::unix_now(),
        })
        .map_err(|e| e.to_string())
}

//! Rendering a tick's [`Event`]s: timestamped, labelled lines for cron and
//! CI ([`Plain`]), and a live view for a person at a terminal ([`Live`]).
//! Both render the same [`line`] of each event.
//!
//! Events carry text from tickets and agents (titles, reasons, paths, the
//! last line of output): [`line`] shows its control characters escaped
//! ([`crate::text::visible`]), so none of it can drive the terminal.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::supervise::Control;
use crate::text::{visible, visible_line};
use crate::tick::event::SkipReason;
use crate::tick::{Event, Reporter};
use crate::ui::Style;

/// What kind of line an event makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something done: claimed, settled, released, cleaned.
    Done,
    /// A ticket skipped because it is invalid or cannot run.
    Skipped,
    /// Worth showing a person watching, not worth a cron mail.
    Info,
    /// orch failed at something.
    Error,
}

/// One rendered event: its kind, the ticket it is about, and the text.
pub struct Line {
    pub kind: Kind,
    pub id: Option<String>,
    pub text: String,
}

fn about(kind: Kind, id: &str, text: String) -> Line {
    Line {
        kind,
        id: Some(id.to_string()),
        text,
    }
}

fn board(kind: Kind, text: String) -> Line {
    Line {
        kind,
        id: None,
        text,
    }
}

/// The line of an event, its control characters made visible; titles and
/// reasons stay on their line.
pub fn line(event: &Event) -> Line {
    let mut l = text_of(event);
    if let std::borrow::Cow::Owned(shown) = visible(&l.text) {
        l.text = shown;
    }
    l
}

fn text_of(event: &Event) -> Line {
    match event {
        Event::Note(text) => board(Kind::Done, text.clone()),
        Event::ConfigWarning(text) => board(Kind::Done, format!("warning: {text}")),
        Event::Invalid(p) => board(Kind::Skipped, p.to_string()),
        Event::Warning(p) => board(Kind::Done, format!("warning: {p}")),
        Event::Stuck { id, text } => about(Kind::Done, id, text.clone()),
        Event::NoRoom {
            ready,
            in_progress,
            max_in_progress,
        } => board(
            Kind::Info,
            format!(
                "{ready} ticket(s) ready, none claimed: {in_progress} in progress, max_in_progress is {max_in_progress}"
            ),
        ),
        Event::NotClaimed { id, why } => match why {
            SkipReason::AgentPaused {
                agent,
                until,
                reason,
            } => board(
                Kind::Info,
                format!(
                    "{id}: not claimed: agent `{agent}` is paused until {until} ({})",
                    visible_line(reason)
                ),
            ),
            SkipReason::AgentMissing(why) => board(
                Kind::Skipped,
                format!(
                    "{}: {why}",
                    crate::ticket::rel_path(crate::ticket::State::Todo, id)
                ),
            ),
            SkipReason::RunLockHeld => about(
                Kind::Done,
                id,
                "skipped: its run lock is held by another process".into(),
            ),
            SkipReason::NotClaimable(why) => about(Kind::Done, id, format!("not claimed: {why}")),
        },
        Event::Claimed { id, attempt, title } => about(
            Kind::Done,
            id,
            format!("claimed (attempt {attempt}): {}", visible_line(title)),
        ),
        Event::Released { id } => about(
            Kind::Done,
            id,
            "was in progress without a claim: returned to todo".into(),
        ),
        Event::Abandoned {
            id,
            attempt,
            reason,
            to,
        } => about(
            Kind::Done,
            id,
            format!(
                "abandoned (attempt {attempt}): {}; moved to {to}",
                visible_line(reason)
            ),
        ),
        Event::Settled {
            id,
            attempt,
            outcome,
            reason,
            to,
        } => about(
            Kind::Done,
            id,
            format!(
                "{outcome} (attempt {attempt}): {}; moved to {to}",
                visible_line(reason)
            ),
        ),
        Event::Deleted {
            id,
            attempt,
            outcome,
        } => about(
            Kind::Done,
            id,
            format!(
                "{outcome} (attempt {attempt}): a person deleted the ticket while it ran; its summary is kept in .orch/plan/runs/{id}/{attempt}.md"
            ),
        ),
        Event::Refused { id } => about(
            Kind::Done,
            id,
            "result refused: the ticket was settled by another tick meanwhile".into(),
        ),
        Event::OutsideWrites { id, text } | Event::Cleaned { id, text } => {
            about(Kind::Done, id, text.clone())
        }
        Event::Landed { id, text } => about(Kind::Done, id, text.clone()),
        Event::HandedBack {
            id,
            outcome,
            reason,
            to,
        } => about(
            Kind::Done,
            id,
            format!("{outcome}: {}; moved to {to}", visible_line(reason)),
        ),
        Event::BudgetSpent { id, text } => match id {
            Some(id) => about(Kind::Info, id, text.clone()),
            None => board(Kind::Info, text.clone()),
        },
        Event::LandWaits { id, text } => match id {
            Some(id) => about(Kind::Skipped, id, format!("waits to land: {text}")),
            None => board(Kind::Skipped, format!("landing waits: {text}")),
        },
        Event::NotifyFailed { id, text } => Line {
            kind: Kind::Done,
            id: id.clone(),
            text: format!("warning: {text}"),
        },
        Event::Error { id, text } => Line {
            kind: Kind::Error,
            id: None,
            text: match id {
                Some(id) => format!("{id}: {text}"),
                None => text.clone(),
            },
        },
    }
}

fn stamp() -> String {
    crate::ticket::now_rfc3339()
}

/// Timestamped lines, for cron mail and CI logs. Info lines are left out
/// unless `-v` asks for them, so a tick with nothing wrong and nothing to
/// do prints nothing.
pub struct Plain;

impl Reporter for Plain {
    fn report(&self, event: &Event) {
        let l = line(event);
        let label = match l.kind {
            Kind::Info if super::verbose() == 0 => return,
            Kind::Info => "",
            Kind::Done => "",
            Kind::Skipped => "skipped: ",
            Kind::Error => "error: ",
        };
        match l.id {
            Some(id) => crate::emitln!("{} {id}: {label}{}", stamp(), l.text),
            None => crate::emitln!("{} {label}{}", stamp(), l.text),
        }
    }
    fn started(&self, ticket: &str, _control: &Control) {
        crate::emitln!("{} {ticket}: agent started", stamp());
    }
    fn stopped(&self, _ticket: &str) {}
}

/// Events as lines, and below them one redrawn line per running ticket with
/// its elapsed time and the agent's last line of output.
pub struct Live {
    state: Arc<Mutex<LiveState>>,
    stop: Arc<AtomicBool>,
    painter: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct LiveState {
    running: BTreeMap<String, (Instant, Control)>,
    drawn: usize,
}

impl LiveState {
    fn clear(&mut self, out: &mut impl Write) {
        for _ in 0..self.drawn {
            let _ = write!(out, "\x1b[1A\x1b[2K");
        }
        self.drawn = 0;
    }

    fn draw(&mut self, out: &mut impl Write, st: &Style) {
        for (id, (since, control)) in &self.running {
            let elapsed = crate::duration::display(Duration::from_secs(since.elapsed().as_secs()));
            let mut last = control
                .last_line
                .lock()
                .map(|l| visible_line(&l).into_owned())
                .unwrap_or_default();
            if last.chars().count() > 70 {
                last = last.chars().take(70).collect::<String>() + "…";
            }
            let _ = writeln!(
                out,
                "  {} {} {}  {}",
                st.cyan("▸"),
                st.bold(id),
                st.dim(&elapsed),
                last
            );
            self.drawn += 1;
        }
        let _ = out.flush();
    }
}

impl Live {
    pub fn start() -> Live {
        let state = Arc::new(Mutex::new(LiveState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let painter = {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let st = Style::stdout();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(mut s) = state.lock() {
                        let mut out = std::io::stdout().lock();
                        s.clear(&mut out);
                        s.draw(&mut out, &st);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Live {
            state,
            stop,
            painter: Some(painter),
        }
    }

    fn print(&self, text: &str) {
        if let Ok(mut s) = self.state.lock() {
            let mut out = std::io::stdout().lock();
            s.clear(&mut out);
            let _ = writeln!(out, "{text}");
            s.draw(&mut out, &Style::stdout());
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(p) = self.painter.take() {
            let _ = p.join();
        }
        if let Ok(mut s) = self.state.lock() {
            s.running.clear();
            s.clear(&mut std::io::stdout().lock());
        }
    }
}

impl Reporter for Live {
    fn report(&self, event: &Event) {
        let st = Style::stdout();
        let l = line(event);
        let time = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
        let about = match &l.id {
            Some(id) => format!("{id}: {}", l.text),
            None => l.text.clone(),
        };
        let text = match l.kind {
            Kind::Info => return self.print(&st.dim(&about)),
            Kind::Skipped => return self.print(&format!("{} {about}", st.yellow("skipped:"))),
            Kind::Error => return self.print(&format!("{} {about}", st.red("error:"))),
            Kind::Done => l.text,
        };
        match l.id {
            Some(id) => self.print(&format!("{} {} {text}", st.dim(&time), st.cyan(&id))),
            None => self.print(&format!("{} {text}", st.dim(&time))),
        }
    }
    fn started(&self, ticket: &str, control: &Control) {
        if let Ok(mut s) = self.state.lock() {
            s.running
                .insert(ticket.to_string(), (Instant::now(), control.clone()));
        }
    }
    fn stopped(&self, ticket: &str) {
        if let Ok(mut s) = self.state.lock() {
            let mut out = std::io::stdout().lock();
            s.clear(&mut out);
            s.running.remove(ticket);
            s.draw(&mut out, &Style::stdout());
        }
    }
}

//! Rate-limited log lines about received packets. keepalived logs every rejected advert (with
//! `-D`, a 10-second flood wrote 100 MB of log): here each instance logs at most
//! [`LINES_PER_WINDOW`] such lines per [`WINDOW`], then one line saying how many it left out.

use std::time::Duration;

pub const WINDOW: Duration = Duration::from_secs(1);
pub const LINES_PER_WINDOW: u32 = 10;

#[derive(Debug, Default)]
pub struct RateLimit {
    window_start: Option<Duration>,
    lines: u32,
    suppressed: u64,
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    /// Log the line.
    pub log: bool,
    /// Lines left out in the window that just ended: say so first.
    pub suppressed_before: u64,
}

impl RateLimit {
    pub fn check(&mut self, now: Duration) -> Decision {
        let mut suppressed_before = 0;
        let expired = self
            .window_start
            .is_none_or(|s| now.saturating_sub(s) >= WINDOW);
        if expired {
            suppressed_before = std::mem::take(&mut self.suppressed);
            self.window_start = Some(now);
            self.lines = 0;
        }
        let log = self.lines < LINES_PER_WINDOW;
        if log {
            self.lines += 1;
        } else {
            self.suppressed += 1;
        }
        Decision {
            log,
            suppressed_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_lines_a_second_then_a_count_of_the_rest() {
        let mut r = RateLimit::default();
        let ms = Duration::from_millis;
        let logged = (0..1000).filter(|i| r.check(ms(*i / 10)).log).count();
        // 1000 lines within 100 ms: ten logged, the rest counted.
        assert_eq!(logged, 10);
        let d = r.check(ms(1000));
        assert_eq!(
            d,
            Decision {
                log: true,
                suppressed_before: 990
            }
        );
        // A quiet instance logs everything, with nothing to report.
        let d = r.check(ms(5000));
        assert_eq!(
            d,
            Decision {
                log: true,
                suppressed_before: 0
            }
        );
    }
}

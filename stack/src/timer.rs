//! A hashed timing wheel with intrusive lists: one node per connection,
//! O(1) to arm, re-arm or cancel, nothing allocated after start.
//!
//! Each connection has at most one deadline, the `poll_at` smoltcp gives
//! for its socket. Ticks are 1 ms (smoltcp's timers are coarser); a
//! deadline is rounded *up* to its tick so a timer never fires early. The
//! wheel has [`SLOTS`] slots; a deadline further out than one turn waits in
//! its slot and is skipped until its turn comes round.

/// Number of slots (one turn = 4.096 s at 1 ms per tick).
pub const SLOTS: usize = 4096;
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: u32,
    next: u32,
    /// Deadline in ticks, or `u64::MAX` when not armed.
    tick: u64,
}

/// The wheel; ids are connection indices `0..capacity`.
#[derive(Debug)]
pub struct TimerWheel {
    heads: Vec<u32>,
    nodes: Vec<Node>,
    /// Every tick below this has been processed.
    cursor: u64,
    armed: usize,
}

impl TimerWheel {
    /// A wheel for ids `0..capacity`, with time starting at tick `now_tick`.
    pub fn new(capacity: usize, now_tick: u64) -> TimerWheel {
        TimerWheel {
            heads: vec![NIL; SLOTS],
            nodes: vec![Node { prev: NIL, next: NIL, tick: u64::MAX }; capacity],
            cursor: now_tick,
            armed: 0,
        }
    }

    /// Grows the id space (at start or when sockets are added; never on
    /// the packet path once the core has reached its connection limit).
    pub fn ensure_capacity(&mut self, capacity: usize) {
        if self.nodes.len() < capacity {
            self.nodes.resize(capacity, Node { prev: NIL, next: NIL, tick: u64::MAX });
        }
    }

    /// Number of armed timers.
    pub fn armed(&self) -> usize {
        self.armed
    }

    /// The deadline of `id`, in ticks, if armed.
    pub fn deadline(&self, id: u32) -> Option<u64> {
        let t = self.nodes[id as usize].tick;
        (t != u64::MAX).then_some(t)
    }

    /// Arms `id` for tick `tick` (replacing any earlier arming). A tick in
    /// the past fires at the next `advance`.
    pub fn arm(&mut self, id: u32, tick: u64) {
        if self.nodes[id as usize].tick == tick {
            return;
        }
        self.cancel(id);
        let tick = tick.max(self.cursor);
        let slot = (tick % SLOTS as u64) as usize;
        let head = self.heads[slot];
        self.nodes[id as usize] = Node { prev: NIL, next: head, tick };
        if head != NIL {
            self.nodes[head as usize].prev = id;
        }
        self.heads[slot] = id;
        self.armed += 1;
    }

    /// Disarms `id` if armed.
    pub fn cancel(&mut self, id: u32) {
        let n = self.nodes[id as usize];
        if n.tick == u64::MAX {
            return;
        }
        if n.prev != NIL {
            self.nodes[n.prev as usize].next = n.next;
        } else {
            self.heads[(n.tick % SLOTS as u64) as usize] = n.next;
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        }
        self.nodes[id as usize] = Node { prev: NIL, next: NIL, tick: u64::MAX };
        self.armed -= 1;
    }

    /// Fires every timer due at or before `now_tick`: disarms it and passes
    /// its id to `fire`.
    pub fn advance(&mut self, now_tick: u64, mut fire: impl FnMut(u32)) {
        if self.armed == 0 {
            self.cursor = self.cursor.max(now_tick + 1);
            return;
        }
        if now_tick < self.cursor {
            return;
        }
        // More than one turn behind: every slot is due once.
        let end = now_tick.min(self.cursor + SLOTS as u64 - 1);
        let mut tick = self.cursor;
        while tick <= end {
            let slot = (tick % SLOTS as u64) as usize;
            let mut id = self.heads[slot];
            while id != NIL {
                let n = self.nodes[id as usize];
                if n.tick <= now_tick {
                    self.cancel(id);
                    fire(id);
                }
                id = n.next;
            }
            tick += 1;
            if self.armed == 0 {
                break;
            }
        }
        self.cursor = now_tick + 1;
    }

    /// The earliest armed tick, looking at most one turn ahead (a timer
    /// further out makes this an early, harmless wake-up). `None` if idle.
    pub fn next_tick(&self) -> Option<u64> {
        if self.armed == 0 {
            return None;
        }
        let mut best = u64::MAX;
        for d in 0..SLOTS as u64 {
            let tick = self.cursor + d;
            let mut id = self.heads[(tick % SLOTS as u64) as usize];
            while id != NIL {
                best = best.min(self.nodes[id as usize].tick);
                id = self.nodes[id as usize].next;
            }
            if best <= tick {
                break;
            }
        }
        Some(best.max(self.cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(w: &mut TimerWheel, now: u64) -> Vec<u32> {
        let mut v = Vec::new();
        w.advance(now, |id| v.push(id));
        v.sort();
        v
    }

    #[test]
    fn fires_at_the_deadline_not_before() {
        let mut w = TimerWheel::new(8, 0);
        w.arm(1, 5);
        w.arm(2, 5);
        w.arm(3, 7);
        assert_eq!(fired(&mut w, 4), Vec::<u32>::new());
        assert_eq!(w.next_tick(), Some(5));
        assert_eq!(fired(&mut w, 5), vec![1, 2]);
        assert_eq!(fired(&mut w, 100), vec![3]);
        assert_eq!(w.armed(), 0);
        assert_eq!(w.next_tick(), None);
    }

    #[test]
    fn rearm_and_cancel_are_exact() {
        let mut w = TimerWheel::new(8, 0);
        w.arm(1, 10);
        w.arm(1, 3);
        w.arm(2, 4);
        w.cancel(2);
        assert_eq!(w.deadline(1), Some(3));
        assert_eq!(w.deadline(2), None);
        assert_eq!(fired(&mut w, 20), vec![1]);
    }

    #[test]
    fn deadlines_beyond_one_turn_wait_for_their_turn() {
        let mut w = TimerWheel::new(8, 0);
        w.arm(1, SLOTS as u64 + 2);
        w.arm(2, 2);
        assert_eq!(fired(&mut w, 2), vec![2]);
        assert_eq!(fired(&mut w, 100), Vec::<u32>::new());
        assert_eq!(w.next_tick(), Some(SLOTS as u64 + 2));
        assert_eq!(fired(&mut w, SLOTS as u64 + 1), Vec::<u32>::new());
        assert_eq!(fired(&mut w, SLOTS as u64 + 2), vec![1]);
    }

    #[test]
    fn a_long_jump_fires_everything_due_once() {
        let mut w = TimerWheel::new(100, 0);
        for id in 0..100u32 {
            w.arm(id, u64::from(id) * 97);
        }
        assert_eq!(fired(&mut w, 1_000_000).len(), 100);
        // Past deadlines fire at the next advance.
        w.arm(5, 10);
        assert_eq!(fired(&mut w, 1_000_001), vec![5]);
    }
}

//! Listeners of one core: listening ports, their backlogs and accept
//! queues.
//!
//! smoltcp has no backlog: a listening socket *becomes* the connection.
//! Here a listener is only a port number and a bound. A SYN for the port
//! takes a socket from the core's free pool and puts it in LISTEN in its
//! own set, and smoltcp turns it into SYN-RECEIVED. The backlog bounds the
//! connections in SYN-RECEIVED plus those established and not yet accepted;
//! a SYN beyond it is answered with a SYN cookie (`syn_cookies`, the
//! default) or dropped (the client retransmits it), and counted. A valid
//! cookie's connection joins the accept queue while that holds fewer than
//! `backlog` (Linux's rule), so at most the backlog's half-open connections
//! plus a full accept queue wait. The accept queue is sized to the backlog
//! at `listen`.

use std::collections::VecDeque;

/// One listening port.
#[derive(Debug)]
pub(crate) struct Listener {
    pub port: u16,
    pub backlog: usize,
    /// Connections counted against the backlog.
    pub pending: usize,
    /// Established connections waiting for `accept`, oldest first.
    pub accept_queue: VecDeque<u32>,
    /// Whether `Acceptable` was reported since the queue last drained.
    pub announced: bool,
    /// When this listener last answered a SYN with a cookie, ms.
    pub cookie_sent_ms: Option<u64>,
}

/// The listeners of a core, by port.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    /// Slot per listener; `None` when closed (slots are reused).
    pub slots: Vec<Option<Listener>>,
    /// port → slot; 65536 entries of u16 would be 128 KiB, so a short
    /// sorted list is used: servers listen on a handful of ports.
    by_port: Vec<(u16, usize)>,
}

impl Listeners {
    /// The slot of the listener on `port`.
    #[inline]
    pub fn find(&self, port: u16) -> Option<usize> {
        self.by_port.binary_search_by_key(&port, |&(p, _)| p).ok().map(|i| self.by_port[i].1)
    }

    /// Adds a listener; `false` if the port already listens.
    pub fn add(&mut self, port: u16, backlog: usize) -> bool {
        let Err(pos) = self.by_port.binary_search_by_key(&port, |&(p, _)| p) else { return false };
        let l = Listener {
            port,
            backlog,
            pending: 0,
            accept_queue: VecDeque::with_capacity(backlog),
            announced: false,
            cookie_sent_ms: None,
        };
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(s) => {
                self.slots[s] = Some(l);
                s
            }
            None => {
                self.slots.push(Some(l));
                self.slots.len() - 1
            }
        };
        self.by_port.insert(pos, (port, slot));
        true
    }

    /// Removes the listener on `port`, returning its slot.
    pub fn remove(&mut self, port: u16) -> Option<(usize, Listener)> {
        let pos = self.by_port.binary_search_by_key(&port, |&(p, _)| p).ok()?;
        let (_, slot) = self.by_port.remove(pos);
        self.slots[slot].take().map(|l| (slot, l))
    }

    /// The listener in `slot`.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Listener> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// Ports listening.
    pub fn ports(&self) -> Vec<u16> {
        self.by_port.iter().map(|&(p, _)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_find_remove_and_reuse_slots() {
        let mut l = Listeners::default();
        assert!(l.add(80, 4));
        assert!(l.add(443, 4));
        assert!(!l.add(80, 8));
        assert_eq!(l.find(443), Some(1));
        assert_eq!(l.find(22), None);
        let (slot, removed) = l.remove(80).unwrap();
        assert_eq!((slot, removed.port), (0, 80));
        assert!(l.add(8080, 2));
        assert_eq!(l.find(8080), Some(0));
        assert_eq!(l.ports(), vec![443, 8080]);
    }
}

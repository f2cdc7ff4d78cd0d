//! Per-core counters: plain integers owned and written by the core's
//! thread only, read by others through a copy ([`CoreStats`] is `Copy`) or
//! through a [`StatsMirror`] that the runtime refreshes now and then.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! core_stats {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Counters of one stack core. Gauges say so; everything else only
        /// grows.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct CoreStats {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl CoreStats {
            /// `(name, value)` of every counter, for printing.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name), )*]
            }

            /// Field-wise sum (gauges add up to the host's total too).
            pub fn add(&mut self, o: &CoreStats) {
                $( self.$name += o.$name; )*
            }
        }

        /// An atomically readable copy of a core's counters, for other
        /// threads; the core publishes into it from its loop.
        #[derive(Debug, Default)]
        pub struct StatsMirror {
            $( $name: AtomicU64, )*
        }

        impl StatsMirror {
            /// Stores a copy (relaxed: each counter is read on its own).
            pub fn publish(&self, s: &CoreStats) {
                $( self.$name.store(s.$name, Ordering::Relaxed); )*
            }

            /// Loads the last published copy.
            pub fn load(&self) -> CoreStats {
                CoreStats { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }
    };
}

core_stats! {
    /// Frames received from the RX queue.
    rx_packets,
    /// Bytes of those frames.
    rx_bytes,
    /// Frames the TX queue took.
    tx_packets,
    /// Bytes of those frames.
    tx_bytes,
    /// TCP segments handed to smoltcp for a known connection.
    rx_tcp_flow,
    /// SYNs that opened a connection on a listener.
    rx_syn_accepted,
    /// Segments for no connection, listener or TIME_WAIT entry (answered
    /// with RST by smoltcp unless they were RSTs).
    rx_stray,
    /// Strays whose 4-tuple RSS would have sent to another core: a
    /// misdirected reply (must stay zero).
    rx_misdirected,
    /// Segments that hit a TIME_WAIT entry.
    rx_time_wait,
    /// ARP frames received.
    rx_arp,
    /// Frames dropped: truncated, bad headers, IPv4 fragments (but those
    /// of ICMP and UDP, counted on their own).
    drop_malformed,
    /// Frames dropped: IPv4 but not TCP, UDP or ICMP, or not for our
    /// address.
    drop_not_ours,
    /// Frames dropped: neither IPv4 nor ARP (IPv6, VLAN-tagged, LLDP, junk).
    drop_ethertype,
    /// TCP segments, UDP datagrams and ICMP messages dropped: the NIC
    /// flagged their IPv4 header checksum bad (write-back IPE), so they
    /// were never read or answered.
    drop_ip_csum_nic,
    /// TCP segments dropped: the NIC flagged their TCP checksum bad
    /// (write-back TCPE).
    drop_tcp_csum_nic,
    /// TCP segments, UDP datagrams and ICMP messages dropped: a bad IPv4
    /// header checksum found by the stack's own check (the NIC did not
    /// check it, or offload is off).
    drop_ip_csum_sw,
    /// TCP segments dropped: a bad TCP checksum found by the stack's own
    /// check.
    drop_tcp_csum_sw,
    /// Frames dropped because the TX batch (ring) was full.
    drop_ring_full,
    /// Packets not built because the mempool was empty.
    drop_mempool_empty,
    /// RSTs for a synchronized connection whose sequence number was not
    /// exactly RCV.NXT (RFC 5961 3.2): dropped, the connection lives on.
    drop_rst_out_of_place,
    /// SYNs on a synchronized connection (RFC 5961 4): dropped, each
    /// answered with a challenge ACK (within the limit).
    drop_syn_synchronized,
    /// Challenge ACKs sent (RFC 5961: an RST inside the window but not at
    /// RCV.NXT, a SYN on a synchronized connection).
    challenge_acks,
    /// Challenge ACKs not sent: over the per-second `challenge_ack_limit`.
    challenge_acks_limited,
    /// Keep-alive probes sent by the stack (connections with per-socket
    /// keep-alive idle/interval/count).
    keepalive_probes,
    /// Connections reset because `count` keep-alive probes went unanswered.
    keepalive_timeouts,
    /// SYNs that found the listener's backlog full, or (with cookies) three
    /// quarters of the core's sockets half-open (answered with a SYN cookie
    /// when `syn_cookies` is on, else dropped), and valid cookie ACKs
    /// dropped because the accept queue was full.
    drop_backlog_full,
    /// SYN-ACKs sent with a SYN cookie (backlog full), keeping no state.
    syn_cookies_sent,
    /// ACKs carrying a valid cookie: connections made from cookies.
    syn_cookies_validated,
    /// ACKs to a listener that sent cookies lately whose cookie was stale,
    /// had an MSS index outside the table, or was forged: no state, RST.
    syn_cookies_rejected,
    /// SYNs dropped because the core had no free socket.
    drop_no_socket,
    /// Packets dropped waiting for ARP (queue full or timed out).
    drop_no_neighbor,
    /// Packets dropped with no route (off-subnet and no gateway).
    drop_no_route,
    /// `send` calls cut short or refused because the connection's send
    /// buffer was full (the peer reads slowly or its window is closed).
    send_buffer_full,
    /// Times the TX ring could not take the whole batch.
    tx_ring_full,
    /// ARP requests sent.
    arp_requests,
    /// ARP requests not sent because the core's budget per retry
    /// interval was spent (many unresolved addresses at once).
    arp_requests_suppressed,
    /// ARP replies sent.
    arp_replies,
    /// ARP frames claiming our own address from another MAC: ignored.
    arp_spoofed,
    /// Neighbours added or changed from ARP input.
    arp_learned,
    /// Packets that waited for ARP and were then sent.
    arp_resolved_sent,
    /// Gauge: connections with a socket (any state but TIME_WAIT).
    conns_open,
    /// Connections opened by `connect`.
    conns_opened_active,
    /// Connections opened by a listener.
    conns_opened_passive,
    /// Connections that ended with FIN on both sides.
    conns_closed,
    /// Connections that ended by RST (received or sent) or timeout.
    conns_reset,
    /// Active opens answered by RST (connection refused).
    conns_refused,
    /// Gauge: entries in the TIME_WAIT table.
    time_wait,
    /// TIME_WAIT entries dropped early because the table was full.
    time_wait_evicted,
    /// TIME_WAIT entries replaced by a new SYN for the same 4-tuple.
    time_wait_reused,
    /// ACKs crafted for retransmitted FINs in TIME_WAIT.
    time_wait_acks,
    /// TCP segments sent again: their sequence space (payload, SYN or FIN)
    /// had been sent before on the same connection (timeouts, fast
    /// retransmits). Counted when smoltcp builds them.
    tcp_retransmits,
    /// TCP segments received whose checksums the stack verified itself
    /// (the NIC had not checked them all, or `checksum_offload` is off).
    rx_csum_software,
    /// IPv4 packets sent with their checksums left to the NIC.
    tx_csum_offloaded,
    /// IPv4 packets whose checksums the stack computed: `checksum_offload`
    /// off or not available, or a packet the NIC's offload cannot describe
    /// (IPv4 options, a protocol other than TCP and UDP, a fragment).
    tx_csum_software,
    /// Packets from a source no host may send from (unspecified,
    /// broadcast, multicast, loopback, our own address or our subnet's
    /// broadcast): dropped, never answered (RFC 1122 3.2.1.3).
    drop_bad_source,
    /// ICMP echo requests for our address, well formed.
    icmp_echo_requests,
    /// ICMP echo replies sent.
    icmp_echo_replies,
    /// ICMP messages not sent: over the core's `icmp_ratelimit_ms` /
    /// `icmp_ratelimit_burst` budget (for types in `icmp_ratemask`).
    icmp_rate_limited,
    /// ICMP destination unreachable / port unreachable sent (a UDP
    /// datagram for a port nobody bound).
    icmp_port_unreachable_sent,
    /// ICMP messages for us of a type the stack does not act on (echo
    /// replies, timestamps, redirects, errors about protocols other than
    /// TCP and UDP...): counted, dropped.
    icmp_ignored,
    /// ICMP destination unreachable for one of our TCP connections whose
    /// quoted sequence number is in SND.UNA..SND.MAX (RFC 5927): acted on
    /// (a hard error in SYN-SENT fails the connect, counted in
    /// `conns_refused` too) or, for a synchronized connection, only counted
    /// (RFC 1122 4.2.3.9: soft errors do not abort, and hard ones need not).
    icmp_unreachable_tcp,
    /// ICMP destination unreachable quoting a datagram sent from one of
    /// our bound UDP ports: recorded on the port for its owner
    /// (`udp_take_error`; sockapi turns port unreachable into
    /// `ConnectionRefused` on a connected socket).
    icmp_unreachable_udp,
    /// Of the TCP ones, fragmentation needed (RFC 1191): each lowers the
    /// connection's path MTU (`pmtu_lowered`) or is ignored
    /// (`pmtu_ignored`).
    icmp_frag_needed,
    /// Fragmentation needed that lowered a connection's path MTU (to the
    /// next-hop MTU, at least 576; see `crate::pmtu`).
    pmtu_lowered,
    /// Other connections of the core to the same destination lowered with
    /// it.
    pmtu_lowered_others,
    /// Fragmentation needed ignored: the value (after the floor of 576)
    /// was not below the connection's path MTU.
    pmtu_ignored,
    /// Interfaces of a lowered MTU made (at most 8 per core).
    pmtu_interfaces,
    /// ICMP errors quoting a TCP segment of no connection of ours, or a
    /// datagram we could not have sent: ignored.
    icmp_errors_no_conn,
    /// ICMP errors for a connection whose quoted sequence number is
    /// outside SND.UNA..SND.MAX: ignored (RFC 5927, blind attacks).
    icmp_errors_out_of_window,
    /// ICMP dropped: shorter than its 8-byte header.
    drop_icmp_truncated,
    /// ICMP dropped: bad ICMP checksum.
    drop_icmp_checksum,
    /// ICMP dropped: an IP fragment (not reassembled).
    drop_icmp_fragment,
    /// ICMP not answered: sent to a broadcast or multicast address (IP or
    /// link layer; RFC 1122 3.2.2.6 allows silence, and we keep it).
    drop_icmp_broadcast,
    /// UDP datagrams queued for a bound port.
    rx_udp,
    /// UDP datagrams sent.
    tx_udp,
    /// UDP datagrams whose 4-tuple RSS would have sent to another core.
    rx_udp_misdirected,
    /// UDP dropped: shorter than its 8-byte header.
    drop_udp_truncated,
    /// UDP dropped: its length field shorter than 8 or beyond the IP
    /// payload.
    drop_udp_bad_length,
    /// UDP dropped: bad checksum (found by the NIC or the stack).
    drop_udp_checksum,
    /// UDP dropped: an IP fragment (not reassembled).
    drop_udp_fragment,
    /// UDP dropped: no port bound (answered with port unreachable unless
    /// rate-limited or sent to a broadcast address).
    drop_udp_no_port,
    /// UDP dropped: the bound port's receive queue (`udp_rx_queue`) was
    /// full.
    drop_udp_queue_full,
    /// UDP dropped: sent to a broadcast or multicast address (no UDP
    /// socket takes them yet).
    drop_udp_broadcast,
    /// Loop iterations.
    polls,
    /// Timer expiries handled.
    timers_fired,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_round_trips_and_sum_adds() {
        let mut s = CoreStats { rx_packets: 3, drop_backlog_full: 2, ..CoreStats::default() };
        let m = StatsMirror::default();
        m.publish(&s);
        assert_eq!(m.load(), s);
        let t = s;
        s.add(&t);
        assert_eq!(s.rx_packets, 6);
        assert!(s.fields().iter().any(|&(n, v)| n == "drop_backlog_full" && v == 4));
    }
}

//! Toeplitz hashing of a TCP/IPv4 4-tuple: the bit-by-bit reference and the
//! table-driven hasher the model and the stack use, and one RETA lookup.
//!
//! Run: `cargo bench -p ixtcp-driver --bench rss`

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, criterion_group, criterion_main};
use ixtcp_driver::rss::{Reta, SYMMETRIC_KEY, Toeplitz, ipv4_ports_input, toeplitz_hash};

fn hashing(c: &mut Criterion) {
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let input = ipv4_ports_input(src, dst, 49152, 80);
    let table = Toeplitz::new(&SYMMETRIC_KEY);
    let reta = Reta::round_robin(4);
    c.bench_function("toeplitz_bitwise_tcp4", |b| b.iter(|| toeplitz_hash(&SYMMETRIC_KEY, black_box(&input))));
    c.bench_function("toeplitz_table_tcp4", |b| b.iter(|| table.hash(black_box(&input))));
    c.bench_function("toeplitz_table_tcp4_and_reta", |b| {
        b.iter(|| reta.queue(table.hash_ipv4_ports(black_box(src), dst, black_box(49152), 80)))
    });
}

criterion_group!(benches, hashing);
criterion_main!(benches);

//! Criterion benches of the engine fold: the pure Router + Owner over generated events, with the
//! eight mixed goals of `examples/goals.toml`, and the same with JSON decoding in front.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use goalpost::codec::json;
use goalpost::engine::Pipeline;
use goalpost::generate::{GenerateConfig, Generator};
use goalpost::goals::GoalSet;
use goalpost::model::SalesEvent;

const EVENTS: u64 = 50_000;

fn fold(c: &mut Criterion) {
    let goals =
        Arc::new(GoalSet::from_toml(include_str!("../examples/goals.toml")).expect("valid goals"));
    let events: Vec<SalesEvent> = Generator::new(GenerateConfig {
        events: EVENTS,
        ..GenerateConfig::default()
    })
    .collect();
    let lines: Vec<Vec<u8>> = events
        .iter()
        .map(|ev| {
            let mut buf = Vec::new();
            json::encode_event(ev, &mut buf);
            buf
        })
        .collect();

    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(20);
    group.bench_function("engine_8_goals", |b| {
        b.iter(|| {
            let mut p = Pipeline::new(goals.clone());
            let mut out = Vec::new();
            for ev in &events {
                p.process(ev, &mut out);
                out.clear();
            }
            p.finish(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("decode_json_and_engine_8_goals", |b| {
        b.iter(|| {
            let mut p = Pipeline::new(goals.clone());
            let mut out = Vec::new();
            let mut ev = SalesEvent::default();
            for line in &lines {
                json::decode_event(line, &mut ev).expect("generated events decode");
                p.process(&ev, &mut out);
                out.clear();
            }
            p.finish(&mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, fold);
criterion_main!(benches);

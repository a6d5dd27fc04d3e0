//! Per-operation timings of the network's building blocks at full resolution, to see where a
//! forward pass spends its time.
//!
//! ```text
//! cargo bench --bench ops -- [--size 256] [--runs 5] [--backend flex]
//! ```

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use dppd::backbone::{
    AttentionConfig, ChannelLayerNormConfig, FeedForwardConfig, TransformerBlockConfig,
};

/// A timed operation.
type Op<'a> = Box<dyn Fn() -> Tensor<4> + 'a>;

fn median(mut f: impl FnMut(), runs: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    dppd::retain_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut size = 256usize;
    let mut runs = 5usize;
    let mut backend = "flex".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" => size = it.next().unwrap().parse().unwrap(),
            "--runs" => runs = it.next().unwrap().parse().unwrap(),
            "--backend" => backend = it.next().unwrap().clone(),
            "--bench" => {}
            o => panic!("unknown option {o}"),
        }
    }
    let d = dppd::device_from_name(&backend).unwrap();
    println!("{backend}, {size}×{size}, median of {runs} after 1 warm-up (ms)");
    for c in [48usize, 96] {
        let x = Tensor::<4>::random([1, c, size, size], Distribution::Normal(0.0, 1.0), &d);
        let sync = |t: Tensor<4>| {
            let _ = t.into_data();
        };
        let ln = ChannelLayerNormConfig::new(c).init(&d);
        let att = AttentionConfig::new(c, 1).init(&d);
        let ffn = FeedForwardConfig::new(c).init(&d);
        let tb = TransformerBlockConfig::new(c, 1).init(&d);
        // The 3×3 convolutions around a level change: a Downsample's C → C/2 and an
        // Upsample's C → 2C, at this resolution (burn's convolution on every backend).
        let down = dppd::backbone::DownsampleConfig::new(c).init(&d);
        let up = dppd::backbone::UpsampleConfig::new(c).init(&d);
        let rows: Vec<(&str, Op)> = vec![
            ("layer norm", Box::new(|| ln.forward(x.clone()))),
            ("attention (MDTA)", Box::new(|| att.forward(x.clone()))),
            ("feed-forward (GDFN)", Box::new(|| ffn.forward(x.clone()))),
            ("transformer block", Box::new(|| tb.forward(x.clone()))),
            ("downsample", Box::new(|| down.forward(x.clone()))),
            ("upsample", Box::new(|| up.forward(x.clone()))),
        ];
        println!("C = {c}");
        for (label, op) in rows {
            let t = median(|| sync(op()), runs);
            println!("  {label:<20} {:8.1}", t * 1e3);
        }
    }
}

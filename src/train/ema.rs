//! An exponential moving average of the weights during training (`ema` in the experiment
//! configuration): after every optimiser step, `ema ← decay·ema + (1 − decay)·weights`,
//! parameter by parameter, starting from the weights the run starts with. The average, not
//! the last step's weights, is what the run validates and writes as `best.bpk` and
//! `final.bpk`; the optimiser's own weights go to `final-raw.bpk`. BasicSR trains its
//! restoration networks this way (`ema_decay`, 0.999).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::model::Restorer;

/// `decay·ema + (1 − decay)·weights`, parameter by parameter. Both must be the same network
/// (the order in which a module visits its parameters is its fields' order, the same for
/// both); `ema` keeps its device and parameter ids and tracks no gradient.
pub(crate) fn blend(ema: Restorer, weights: &Restorer, decay: f64) -> Restorer {
    struct Blend {
        next: std::vec::IntoIter<Tensor<1>>,
        decay: f64,
    }
    impl ModuleMapper for Blend {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let w = self
                .next
                .next()
                .expect("the average and the weights are the same network");
            let decay = self.decay;
            param.map(|e| {
                let dims = e.dims();
                let w = w.to_device(&e.device()).reshape(dims);
                e.mul_scalar(decay) + w.mul_scalar(1.0 - decay)
            })
        }
    }
    let mut blend = Blend {
        next: params(&weights.valid()).into_iter(),
        decay,
    };
    let out = ema.map(&mut blend);
    debug_assert!(blend.next.next().is_none(), "parameters left over");
    out
}

/// Every float parameter of `m`, flattened, in visiting order.
fn params(m: &Restorer) -> Vec<Tensor<1>> {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().flatten::<1>(0, D - 1));
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RestorerConfig;
    use crate::test_util::{device, max_abs_diff};

    /// Two `dppd-small` networks initialised from the two seeds.
    fn two_networks(seeds: [u64; 2]) -> (Restorer, Restorer) {
        let d = device();
        let config: RestorerConfig = serde_json::from_value(serde_json::json!("dppd-small"))
            .map(|p: crate::train::ModelSpec| p.resolve().unwrap())
            .unwrap();
        let [a, b] = seeds.map(|seed| {
            d.seed(seed);
            config.init(&d)
        });
        (a, b)
    }

    #[test]
    fn each_parameter_moves_by_one_minus_decay_toward_the_weights() {
        let (a, b) = two_networks([1, 2]);
        let mixed = blend(a.clone(), &b, 0.75);
        let (pa, pb, pm) = (params(&a), params(&b), params(&mixed));
        assert_eq!(pm.len(), pa.len());
        let mut moved = 0;
        for ((x, y), m) in pa.into_iter().zip(pb).zip(pm) {
            if max_abs_diff(x.clone(), y.clone()) > 0.0 {
                moved += 1;
            }
            let want = x.mul_scalar(0.75) + y.mul_scalar(0.25);
            assert!(max_abs_diff(m, want) < 1e-6);
        }
        assert!(
            moved > 10,
            "the two initialisations differ in {moved} parameters"
        );
        // the ids stay the average's, so a checkpoint's sections index the same parameters
        struct Ids(Vec<burn::module::ParamId>);
        impl ModuleVisitor for Ids {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.push(param.id);
            }
        }
        let (mut ia, mut im) = (Ids(Vec::new()), Ids(Vec::new()));
        a.visit(&mut ia);
        mixed.visit(&mut im);
        assert_eq!(ia.0, im.0);
    }

    #[test]
    fn a_decay_of_zero_copies_and_of_one_keeps() {
        let (a, b) = two_networks([3, 4]);
        for (m, want) in [
            (blend(a.clone(), &b, 0.0), &b),
            (blend(a.clone(), &b, 1.0), &a),
        ] {
            for (x, y) in params(&m).into_iter().zip(params(want)) {
                assert_eq!(max_abs_diff(x, y), 0.0);
            }
        }
    }
}

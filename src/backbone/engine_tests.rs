//! Each backward kernel against burn's autodiff of the module it differentiates (burn's
//! operations on an autodiff device): the gradient of `Σ y·dy` with respect to the module's
//! input and to each of its parameters.

use super::{AttentionConfig, ChannelLayerNormConfig, FeedForwardConfig, LayerNormType};
use crate::cpu::testing::{
    Weights, attention_backward, attention_maps, depthwise_backward, depthwise_into, fold,
    from_vec, gate, gate_backward, into_vec, layer_norm_backward, matmul_items, pointwise_backward,
    pointwise_raw,
};
use crate::test_util::{device, max_abs_diff};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;

fn normal<const D: usize>(shape: [usize; D], d: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), d)
}

/// `ours` (plain values) against `theirs` (a gradient tensor), relative to its largest value.
fn close<const D: usize>(ours: Vec<f32>, theirs: Tensor<D>, what: &str) {
    let d = theirs.device();
    let scale = theirs.clone().abs().max().into_scalar::<f32>().max(1.0);
    let diff = max_abs_diff(from_vec(ours, theirs.dims(), &d), theirs) / scale;
    assert!(diff < 1e-4, "{what}: relative difference {diff}");
}

#[test]
fn layer_norm_gradients() {
    let ad = device().autodiff();
    for kind in [LayerNormType::WithBias, LayerNormType::BiasFree] {
        let mut ln = ChannelLayerNormConfig::new(6).with_kind(kind).init(&ad);
        ln.body.weight = Param::from_tensor(normal([6], &ad).require_grad());
        let (b, n) = (2, 7 * 5);
        let x = normal([b, 6, 7, 5], &ad).require_grad();
        let dy = normal([b, 6, 7, 5], &ad);
        let g = (ln.forward(x.clone()) * dy.clone()).sum().backward();
        let w = into_vec(ln.body.weight.val().inner());
        let (dx, dw, db) = layer_norm_backward(
            &into_vec(x.clone().inner()),
            &into_vec(dy.inner()),
            (b, 6, n),
            &w,
            kind == LayerNormType::WithBias,
            1e-5,
        );
        close(dx, x.grad(&g).unwrap(), "dx");
        close(dw, ln.body.weight.val().grad(&g).unwrap(), "dweight");
        if let Some(bias) = &ln.body.bias {
            close(db, bias.val().grad(&g).unwrap(), "dbias");
        }
    }
}

#[test]
fn feed_forward_gradients() {
    let ad = device().autodiff();
    let ffn = FeedForwardConfig::new(6).with_bias(true).init(&ad);
    let hidden = ffn.project_out.weight.dims()[1];
    let (b, h, w) = (2, 6, 9);
    let n = h * w;
    let x = normal([b, 6, h, w], &ad).require_grad();
    let dy = normal([b, 6, h, w], &ad);
    let g = (ffn.forward(x.clone()) * dy.clone()).sum().backward();
    let v = |t: Tensor<4>| into_vec(t.inner());
    let vb = |c: &burn::nn::conv::Conv2d| into_vec(c.bias.as_ref().unwrap().val().inner());
    let (w_in, w_dw, w_out) = (
        v(ffn.project_in.weight.val()),
        v(ffn.dwconv.weight.val()),
        v(ffn.project_out.weight.val()),
    );
    let (b_in, b_dw, b_out) = (vb(&ffn.project_in), vb(&ffn.dwconv), vb(&ffn.project_out));
    let xv = v(x.clone());
    // forward with the kernels, keeping what the backward pass needs
    let hv = pointwise_raw(&w_in, Some(&b_in), (2 * hidden, 6), &xv, b, n);
    let gv = depthwise_into(&w_dw, Some(&b_dw), &hv, b, (h, w));
    let zv = gate(&gv, b, hidden, n);
    let mut y = vec![0.0f32; b * 6 * n];
    matmul_items(
        Weights::new(&w_out, Some(&b_out), 6, hidden),
        &zv,
        hidden * n,
        &mut y,
        6 * n,
        b,
        n,
        false,
    );
    assert!(
        max_abs_diff(
            from_vec(y, [b, 6, h, w], &device()),
            ffn.forward(x.clone().inner())
        ) < 1e-4
    );
    // backward
    let dyv = v(dy);
    let (dz, dw_out, db_out) = pointwise_backward(&w_out, (6, hidden), &zv, &dyv, b, n, true);
    let dg = gate_backward(&gv, &dz.unwrap(), b, hidden, n);
    let (dh, dw_dw, db_dw) = depthwise_backward(&w_dw, &hv, &dg, b, (h, w));
    let (dx, dw_in, db_in) = pointwise_backward(&w_in, (2 * hidden, 6), &xv, &dh, b, n, true);
    close(dx.unwrap(), x.grad(&g).unwrap(), "dx");
    close(
        dw_out,
        ffn.project_out.weight.val().grad(&g).unwrap(),
        "project_out",
    );
    close(
        db_out,
        ffn.project_out
            .bias
            .as_ref()
            .unwrap()
            .val()
            .grad(&g)
            .unwrap(),
        "project_out bias",
    );
    close(dw_dw, ffn.dwconv.weight.val().grad(&g).unwrap(), "dwconv");
    close(
        db_dw,
        ffn.dwconv.bias.as_ref().unwrap().val().grad(&g).unwrap(),
        "dwconv bias",
    );
    close(
        dw_in,
        ffn.project_in.weight.val().grad(&g).unwrap(),
        "project_in",
    );
    close(
        db_in,
        ffn.project_in
            .bias
            .as_ref()
            .unwrap()
            .val()
            .grad(&g)
            .unwrap(),
        "project_in bias",
    );
}

#[test]
fn attention_gradients() {
    let ad = device().autodiff();
    for heads in [1, 3] {
        let mut at = AttentionConfig::new(6, heads).with_bias(true).init(&ad);
        at.temperature = Param::from_tensor(
            Tensor::<3>::random([heads, 1, 1], Distribution::Normal(1.5, 0.4), &ad).require_grad(),
        );
        let (b, h, w) = (2, 5, 8);
        let n = h * w;
        let x = normal([b, 6, h, w], &ad).require_grad();
        let dy = normal([b, 6, h, w], &ad);
        let g = (at.forward(x.clone()) * dy.clone()).sum().backward();
        let v = |t: Tensor<4>| into_vec(t.inner());
        let vb = |c: &burn::nn::conv::Conv2d| into_vec(c.bias.as_ref().unwrap().val().inner());
        let (w_qkv, w_dw, w_out) = (
            v(at.qkv.weight.val()),
            v(at.qkv_dwconv.weight.val()),
            v(at.project_out.weight.val()),
        );
        let (b_qkv, b_dw, b_out) = (vb(&at.qkv), vb(&at.qkv_dwconv), vb(&at.project_out));
        let temp = into_vec(at.temperature.val().inner());
        let xv = v(x.clone());
        let t = pointwise_raw(&w_qkv, Some(&b_qkv), (18, 6), &xv, b, n);
        let u = depthwise_into(&w_dw, Some(&b_dw), &t, b, (h, w));
        let dyv = v(dy);
        let (mut du, mut dw_out, mut dtemp) = (Vec::new(), vec![0.0f32; 36], vec![0.0f32; heads]);
        let mut y = Vec::new();
        for i in 0..b {
            let item = &u[i * 18 * n..(i + 1) * 18 * n];
            let maps = attention_maps(item, 6, heads, n, &temp);
            let m = fold(&w_out, &maps.attn, 6, heads);
            let mut yi = vec![0.0f32; 6 * n];
            matmul_items(
                Weights::new(&m, Some(&b_out), 6, 6),
                &item[12 * n..],
                0,
                &mut yi,
                0,
                1,
                n,
                false,
            );
            y.extend(yi);
            let gi = attention_backward(
                item,
                &maps,
                &w_out,
                &temp,
                &dyv[i * 6 * n..(i + 1) * 6 * n],
                (6, heads, n),
            );
            du.extend(gi.dqkv);
            dw_out.iter_mut().zip(&gi.dw_out).for_each(|(a, d)| *a += d);
            dtemp
                .iter_mut()
                .zip(&gi.dtemperature)
                .for_each(|(a, d)| *a += d);
        }
        assert!(
            max_abs_diff(
                from_vec(y, [b, 6, h, w], &device()),
                at.forward(x.clone().inner())
            ) < 1e-4
        );
        let (dt, dw_dw, db_dw) = depthwise_backward(&w_dw, &t, &du, b, (h, w));
        let (dx, dw_qkv, db_qkv) = pointwise_backward(&w_qkv, (18, 6), &xv, &dt, b, n, true);
        close(dx.unwrap(), x.grad(&g).unwrap(), "dx");
        close(dtemp, at.temperature.val().grad(&g).unwrap(), "temperature");
        close(
            dw_out,
            at.project_out
                .weight
                .val()
                .grad(&g)
                .unwrap()
                .reshape([6, 6]),
            "project_out",
        );
        close(
            dw_dw,
            at.qkv_dwconv.weight.val().grad(&g).unwrap(),
            "qkv_dwconv",
        );
        close(
            db_dw,
            at.qkv_dwconv.bias.as_ref().unwrap().val().grad(&g).unwrap(),
            "qkv_dwconv bias",
        );
        close(dw_qkv, at.qkv.weight.val().grad(&g).unwrap(), "qkv");
        close(
            db_qkv,
            at.qkv.bias.as_ref().unwrap().val().grad(&g).unwrap(),
            "qkv bias",
        );
    }
}

/// The convolution node (`cpu::train::conv`, which `backbone::conv3x3` and
/// `backbone::conv1x1` take on a flex autodiff device) against burn's convolution: output and
/// the gradients of the input, kernels and biases, for 3×3 and 1×1 kernels, one-channel, wide
/// and narrow convolutions, odd sizes, with and without biases, and with an input that needs
/// no gradient (the photograph itself).
#[test]
fn conv_node_gradients() {
    let ad = device().autodiff();
    for k in [3, 1] {
        for (c_in, c_out, h, w, bias, input_grad) in [
            (3, 8, 9, 7, true, false),
            (5, 3, 12, 11, false, true),
            (8, 16, 4, 6, true, true),
            (1, 1, 1, 1, true, true),
            (6, 2, 17, 3, false, true),
        ] {
            let conv = super::conv(c_in, c_out, k, bias, &ad);
            let mut x = normal([2, c_in, h, w], &ad);
            if input_grad {
                x = x.require_grad();
            }
            let dy = normal([2, c_out, h, w], &ad);
            assert_eq!(crate::cpu::route(&x), crate::cpu::Route::Train);
            let ours = if k == 3 {
                super::conv3x3(&conv, x.clone())
            } else {
                super::conv1x1(&conv, x.clone())
            };
            let theirs = conv.forward(x.clone());
            let what = format!("{k}×{k}, {c_in}→{c_out} at {h}×{w}");
            close(
                into_vec(ours.clone().inner()),
                theirs.clone().inner(),
                &what,
            );
            let g1 = (ours * dy.clone()).sum().backward();
            let g2 = (theirs * dy).sum().backward();
            if input_grad {
                let dx = into_vec(x.grad(&g1).expect("dx"));
                close(dx, x.grad(&g2).unwrap(), &format!("{what}: dx"));
            } else {
                assert!(x.grad(&g1).is_none());
            }
            let kernel = conv.weight.val();
            close(
                into_vec(kernel.grad(&g1).expect("dk")),
                kernel.grad(&g2).unwrap(),
                &format!("{what}: dk"),
            );
            if let Some(b) = &conv.bias {
                let b = b.val();
                close(
                    into_vec(b.grad(&g1).expect("db")),
                    b.grad(&g2).unwrap(),
                    &format!("{what}: dbias"),
                );
            }
        }
    }
}

//! Bilinear resizing written as two matrix products, so that every backend can differentiate it.
//!
//! burn's `interpolate` has no backward pass on ndarray; a separable bilinear resize is
//! `Y = R_h · X · R_wᵀ` with fixed interpolation matrices, which needs only `matmul`.

use burn::prelude::*;

/// The `out × inp` matrix of 1-D linear interpolation with `align_corners = false`
/// (PyTorch's `F.interpolate(mode="bilinear")` default): output sample `i` reads the input
/// at `(i + 0.5)·inp/out − 0.5`, clamped below at 0, between its two neighbours.
pub(crate) fn interpolation_matrix(out: usize, inp: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; out * inp];
    let scale = inp as f64 / out as f64;
    for i in 0..out {
        let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(inp - 1);
        let i1 = (i0 + 1).min(inp - 1);
        let l1 = (src - i0 as f64) as f32;
        m[i * inp + i0] += 1.0 - l1;
        m[i * inp + i1] += l1;
    }
    m
}

/// Resizes the last two axes to `[h, w]` with bilinear interpolation, `align_corners = false`,
/// exactly as PyTorch's `F.interpolate(x, (h, w), mode="bilinear")`.
///
/// # Shapes
/// - input `[B, C, H_in, W_in]`
/// - output `[B, C, h, w]`
pub fn resize_bilinear(x: Tensor<4>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [b, c, h_in, w_in] = x.dims();
    if [h, w] == [h_in, w_in] {
        return x;
    }
    let device = x.device();
    let rh = Tensor::<2>::from_data(
        TensorData::new(interpolation_matrix(h, h_in), [h, h_in]),
        &device,
    );
    let rw_t = Tensor::<2>::from_data(
        TensorData::new(interpolation_matrix(w, w_in), [w, w_in]),
        &device,
    )
    .transpose();
    let x = x.reshape([b * c, h_in, w_in]);
    let y = rh.unsqueeze::<3>().matmul(x).matmul(rw_t.unsqueeze::<3>());
    y.reshape([b, c, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff, tensor};

    #[test]
    fn two_by_two_to_four_by_four_matches_pytorch() {
        // torch: F.interpolate([[1,2],[3,4]], (4,4), mode="bilinear") row 0 = 1, 1.25, 1.75, 2
        let d = device();
        let x = tensor(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], &d);
        let y = resize_bilinear(x, [4, 4]);
        let expect = tensor(
            vec![
                1.0, 1.25, 1.75, 2.0, //
                1.5, 1.75, 2.25, 2.5, //
                2.5, 2.75, 3.25, 3.5, //
                3.0, 3.25, 3.75, 4.0,
            ],
            [1, 1, 4, 4],
            &d,
        );
        assert!(max_abs_diff(y, expect) < 1e-6);
    }

    #[test]
    fn rows_sum_to_one_and_downscaling_averages_neighbours() {
        for (o, i) in [(5, 3), (3, 5), (7, 16), (16, 7), (1, 4)] {
            let m = interpolation_matrix(o, i);
            for r in 0..o {
                let s: f32 = m[r * i..(r + 1) * i].iter().sum();
                assert!((s - 1.0).abs() < 1e-6, "{o}x{i} row {r} sums to {s}");
            }
        }
        // Halving: output i reads input 2i + 0.5, the mean of inputs 2i and 2i+1.
        let m = interpolation_matrix(2, 4);
        assert_eq!(m, vec![0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]);
    }

    #[test]
    fn non_square_resize_is_separable() {
        let d = device();
        let x = tensor((0..6).map(|v| v as f32).collect(), [1, 1, 2, 3], &d);
        // A plane a·row + b·col is reproduced exactly away from the clamped borders.
        let y = resize_bilinear(x, [4, 6]);
        assert_eq!(y.dims(), [1, 1, 4, 6]);
        let v: Vec<f32> = y.into_data().try_into_vec::<f32>().unwrap();
        // Output (1, 2): row src = 1.5·0.5 − 0.5 = 0.25, col src = 2.5·0.5 − 0.5 = 0.75
        assert!((v[6 + 2] - (3.0 * 0.25 + 0.75)).abs() < 1e-6);
    }
}

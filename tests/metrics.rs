//! PSNR and SSIM against the values scikit-image computed (tests/data/metrics/README.md).

use std::path::Path;

use dppd::data::read_image;
use dppd::eval::{psnr, restoration_scores, ssim};

#[test]
fn psnr_and_ssim_match_scikit_image() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/metrics");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let pairs = reference["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 4);
    for p in pairs {
        let name = p["name"].as_str().unwrap();
        let clean = read_image(dir.join(p["clean"].as_str().unwrap())).unwrap();
        let degraded = read_image(dir.join(p["degraded"].as_str().unwrap())).unwrap();
        let num = |k: &str| p[k].as_f64().unwrap();
        let (ps, ss) = (
            psnr(&clean, &degraded).unwrap(),
            ssim(&clean, &degraded).unwrap(),
        );
        assert!(
            (ps - num("psnr")).abs() < 1e-3,
            "{name}: PSNR {ps} vs {}",
            num("psnr")
        );
        assert!(
            (ss - num("ssim")).abs() < 1e-4,
            "{name}: SSIM {ss} vs {}",
            num("ssim")
        );
        let (pc, sc) = restoration_scores(&degraded, &clean).unwrap();
        assert!(
            (pc - num("psnr_crop16")).abs() < 1e-3,
            "{name}: cropped PSNR {pc} vs {}",
            num("psnr_crop16")
        );
        assert!(
            (sc - num("ssim_crop16")).abs() < 1e-4,
            "{name}: cropped SSIM {sc} vs {}",
            num("ssim_crop16")
        );
    }
}

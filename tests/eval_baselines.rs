//! `ember eval` on the real fp32 all-MiniLM-L6-v2 reproduces the published quality baselines.
//!
//! Provenance of the bounds: `tests/data/reference/quality_maxlen256.json` ("ort_fp32" and
//! "numpy_fp32(reference impl)", truncation 256): Lee Pearson 0.6564, Lee Spearman 0.5083,
//! WordSim-353 ρ 0.7289, SimLex-999 ρ 0.4462, polarity probe (logistic regression, 10-fold) 0.745.
//! Issue 3 asks for ±0.005 (±0.02 for the probe). Fidelity vs the independent reference: ≥ 0.99999.

use ember::eval::{EvalData, evaluate, load_model, teacher_for};
use ember_models::assets::Assets;

#[test]
fn fp32_minilm_reproduces_the_published_baselines() {
    let assets = Assets::from_env().unwrap().quiet(true);
    let model = load_model("minilm-l6", &assets).unwrap();
    let data = EvalData::load(&assets).unwrap();
    let (teacher, independent) = teacher_for(&model).unwrap();
    assert!(
        independent,
        "minilm-l6 must be checked against the independent reference"
    );
    let r = evaluate(&model.encoder, &teacher, &data, &mut |_, _| {}).unwrap();
    eprintln!("{}", r.table());
    let near = |name: &str, got: f64, want: f64, tol: f64| {
        assert!((got - want).abs() <= tol, "{name}: {got:.4}, published {want} ± {tol}");
    };
    assert!(r.cos_min >= 0.99999, "cos_min {}", r.cos_min);
    near("lee_pearson", r.lee_pearson, 0.656, 0.005);
    near("lee_spearman", r.lee_spearman, 0.508, 0.005);
    near("wordsim_spearman", r.wordsim_spearman, 0.729, 0.005);
    near("simlex_spearman", r.simlex_spearman, 0.446, 0.005);
    near("polarity_probe_acc", r.polarity_probe_acc, 0.745, 0.02);
    assert_eq!(data.lee_pairs.len(), 1225);
    assert_eq!(data.polarity.len(), 200);
}

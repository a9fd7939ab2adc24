//! `ember plan` predicts the artifact exactly. For every recipe in `configs/` that composes
//! (post-training quantization, DeepSpeed numerics included, and training recipes with their
//! steps cut to two: bytes and kernels do not depend on steps), the plan resolved from the
//! weight-free inventory names, module for module, the bytes and the kernel family that
//! `ember inspect` reports for the artifact that composing the recipe writes.

use std::path::PathBuf;

use ember::compose::{EncoderRun, Finish, compose_encoder, inventory_for, registry};
use ember::eval::load_model;
use ember::events::Events;
use ember_core::Composer;
use ember_models::assets::Assets;
use ember_models::{CleanOptions, clean};
use ember_runtime::artifact::{ModuleSummary, read_manifest};

fn recipes() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn plan_bytes_and_kernels_match_inspect_of_the_written_artifact() {
    let composer = Composer::new(registry());
    let assets = Assets::from_env().unwrap().quiet(true);
    let dir = std::env::temp_dir().join(format!("ember-plan-vs-artifact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut composed = Vec::new();
    for path in recipes() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let mut parsed = ember::compose::load(&path).unwrap();
        // Bytes and kernels depend neither on how long a recipe trains nor on its schedules:
        // every schedule starts at 0 and MoQ drops a bit per step, settling before the end.
        let mut drops = 0;
        if let Some(w) = &mut parsed.config.compression_training.weight_quantization {
            w.shared_parameters.schedule_offset = 0;
            for g in w.different_groups.iter_mut().flat_map(|g| g.values_mut()) {
                g.params.quantization_period = 0;
                drops = drops.max(
                    g.params
                        .start_bits
                        .unwrap_or(0)
                        .saturating_sub(g.params.target_bits.unwrap_or(0)),
                );
            }
        }
        if let Some(a) = &mut parsed.config.compression_training.activation_quantization {
            a.shared_parameters.schedule_offset = 0;
        }
        if let Some(t) = &mut parsed.config.training {
            t.steps = 2 + u64::from(drops);
            t.warmup_steps = 0;
            t.batch_size = t.batch_size.min(4);
            t.max_seq_len = t.max_seq_len.min(32);
        }
        if let Some(l) = parsed.config.distillation.as_mut().and_then(|d| d.layerwise.as_mut()) {
            l.steps = 2;
        }
        let config = &parsed.config;
        let plan = composer
            .plan(config, &inventory_for(&config.model.source).unwrap())
            .unwrap();
        if composer.check_supported(config, &plan).is_err() || ember::distill::check_training(config).is_err() {
            continue; // uses what is not built yet (pruning, layer reduction)
        }
        let loaded = load_model(&config.model.source, &assets).unwrap();
        // Finished as `compose --out` finishes it: for clean only.
        let encoder = compose_encoder(
            &composer,
            config,
            loaded,
            &assets,
            EncoderRun::new(true, &mut Events::open(None, &[]).unwrap(), Finish::Clean),
        )
        .unwrap();
        let cleaned = clean(
            &encoder.model,
            &CleanOptions {
                tokenizer: None,
                max_seq_length: None,
                meta: Default::default(),
                prune: Default::default(),
            },
        )
        .unwrap();
        let out = dir.join(format!("{name}.ember"));
        ember_runtime::artifact::write(&cleaned, &out).unwrap();
        let inspected: Vec<ModuleSummary> = read_manifest(&out).unwrap().modules();
        let planned: Vec<(&str, u64, &str)> = plan
            .modules
            .iter()
            .map(|m| (m.path.as_str(), m.bytes_after, m.kernel.as_str()))
            .collect();
        let written: Vec<(&str, u64, &str)> = inspected
            .iter()
            .map(|m| (m.name.as_str(), m.bytes, m.kernel.as_str()))
            .collect();
        assert_eq!(planned.len(), written.len(), "{name}: module count");
        for (p, w) in planned.iter().zip(&written) {
            assert_eq!(p, w, "{name}: plan (left) vs artifact (right)");
        }
        // The engine runs each Linear with the kernel family inspect names.
        let engine = ember_runtime::Engine::new(&cleaned, Default::default()).unwrap();
        for k in engine.kernels() {
            let w = written.iter().find(|w| w.0 == k.name).unwrap();
            assert_eq!(k.kernel, w.2, "{name}: {} engine vs artifact", k.name);
        }
        assert_eq!(
            engine.kernels().len(),
            written.len() - 3,
            "{name}: every Linear reported"
        );
        composed.push(name);
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The post-training recipes, Ember and DeepSpeed numerics, integer and float kernels.
    for must in [
        "zeroquant-w8a8",
        "zeroquant-w8a8-deepspeed",
        "w4-g64-gptq",
        "w1a8-ptq",
        "w8-weight-only",
        "w4-g64-a8-kd",
        "xtc-w1a8-kd",
        "w4w8-a8-lkd",
    ] {
        assert!(
            composed.iter().any(|c| c == must),
            "{must} was not composed: {composed:?}"
        );
    }
}

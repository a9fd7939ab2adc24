//! The power iteration on finite-difference Hessian-vector products against a closed form: for
//! L = (1/n)·Σᵢ ‖W·xᵢ + b − yᵢ‖², the Hessian of each output row (w_r, b_r) is
//! A = (2/n)·Σᵢ zᵢzᵢᵀ with zᵢ = [xᵢ; 1], so the dominant eigenvalue is λ_max(A).

use burn::tensor::{Device, Tensor, TensorData};
use ember_models::blocks::Linear;
use ember_train::eigen::{PowerIteration, dominant_eigenvalue};

#[test]
fn the_dominant_eigenvalue_of_a_least_squares_loss_is_the_closed_form() {
    let plain = Device::flex();
    let device = Device::flex().autodiff();
    plain.seed(3);
    let layer = Linear::random(3, 2, &plain);
    let n = 5;
    let x: Vec<f32> = vec![
        1.0, 0.5, -1.0, 2.0, -0.3, 0.7, 0.1, 1.5, -2.0, -1.2, 0.4, 0.9, 0.6, -0.8, 1.1,
    ];
    let y: Vec<f32> = vec![0.3, -1.0, 2.0, 0.5, -0.7, 1.2, 0.0, 0.4, 1.5, -0.2];
    let loss = |l: &Linear| -> Result<Tensor<1>, String> {
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [n, 3]), &device);
        let yt = Tensor::<2>::from_data(TensorData::new(y.clone(), [n, 2]), &device);
        let out = xt.matmul(l.weight.val().transpose()) + l.bias.as_ref().unwrap().val().unsqueeze_dim(0);
        Ok((out - yt).powf_scalar(2.0).sum().div_scalar(n as f64))
    };
    let opts = PowerIteration {
        max_iter: 200,
        tol: 1e-9,
        stability: 0.0,
        seed: 1,
    };
    let got = dominant_eigenvalue(&layer, |_| true, &device, loss, opts)
        .unwrap()
        .unwrap();
    // The reference: A built explicitly, its top eigenvalue by plain power iteration in f64.
    let mut a = [[0.0f64; 4]; 4];
    for i in 0..n {
        let z = [
            f64::from(x[3 * i]),
            f64::from(x[3 * i + 1]),
            f64::from(x[3 * i + 2]),
            1.0,
        ];
        for r in 0..4 {
            for c in 0..4 {
                a[r][c] += 2.0 / n as f64 * z[r] * z[c];
            }
        }
    }
    let mut v = [1.0f64, 0.3, -0.2, 0.5];
    let mut lambda = 0.0;
    for _ in 0..2000 {
        let w: Vec<f64> = (0..4).map(|r| (0..4).map(|c| a[r][c] * v[c]).sum()).collect();
        lambda = w.iter().zip(&v).map(|(p, q)| p * q).sum::<f64>() / v.iter().map(|q| q * q).sum::<f64>();
        let norm = w.iter().map(|p| p * p).sum::<f64>().sqrt();
        for (vi, wi) in v.iter_mut().zip(&w) {
            *vi = wi / norm;
        }
    }
    assert!(
        (got - lambda).abs() <= 1e-3 * lambda,
        "power iteration {got} vs closed form {lambda}"
    );
    // Selecting nothing gives no estimate.
    assert_eq!(
        dominant_eigenvalue(&layer, |_| false, &device, loss, opts).unwrap(),
        None
    );
}

//! The linear probe: L2-regularized logistic regression with an intercept, and stratified k-fold
//! cross-validation, both matching scikit-learn's defaults (`LogisticRegression()` with `C = 1`,
//! `cross_val_score(..., cv=10)` → `StratifiedKFold(10)` without shuffling).
//!
//! No light, maintained Rust crate offers exactly this (linfa-logistic pulls ndarray + argmin for
//! a 385-parameter problem), so it is written here: Newton's method with backtracking on the
//! exact objective `½‖w‖² + C·Σ log(1 + exp(−yᵢ(w·xᵢ + b)))` (intercept not penalized, as
//! sklearn's lbfgs solver), solved to a gradient norm of 1e-10.

/// A fitted binary logistic regression.
#[derive(Debug, Clone)]
pub struct LogisticRegression {
    /// Feature weights.
    pub weights: Vec<f64>,
    /// Intercept.
    pub bias: f64,
}

impl LogisticRegression {
    /// Fits on rows `x` with labels `y` (true = positive class) and inverse regularization `c`.
    pub fn fit(x: &[Vec<f32>], y: &[bool], c: f64) -> LogisticRegression {
        let d = x.first().map_or(0, Vec::len);
        let p = d + 1; // weights + intercept
        let rows: Vec<Vec<f64>> = x
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).chain(std::iter::once(1.0)).collect())
            .collect();
        let targets: Vec<f64> = y.iter().map(|&t| if t { 1.0 } else { 0.0 }).collect();
        let objective = |theta: &[f64]| -> f64 {
            let reg: f64 = theta[..d].iter().map(|w| w * w).sum::<f64>() * 0.5;
            let loss: f64 = rows
                .iter()
                .zip(&targets)
                .map(|(r, &t)| {
                    let z = dot(r, theta);
                    // log(1 + e^z) − t·z, computed stably.
                    softplus(z) - t * z
                })
                .sum();
            reg + c * loss
        };
        let mut theta = vec![0.0; p];
        let mut value = objective(&theta);
        for _ in 0..100 {
            let mut grad = vec![0.0; p];
            let mut hess = vec![0.0; p * p];
            for (r, &t) in rows.iter().zip(&targets) {
                let prob = sigmoid(dot(r, &theta));
                let (g, s) = (c * (prob - t), c * prob * (1.0 - prob));
                for i in 0..p {
                    grad[i] += g * r[i];
                    let sri = s * r[i];
                    for j in 0..=i {
                        hess[i * p + j] += sri * r[j];
                    }
                }
            }
            for i in 0..d {
                grad[i] += theta[i];
                hess[i * p + i] += 1.0;
            }
            if grad.iter().map(|g| g.abs()).fold(0.0, f64::max) < 1e-10 {
                break;
            }
            let Some(step) = cholesky_solve(&mut hess, &grad, p) else {
                break;
            };
            // Backtracking line search on the exact objective.
            let mut t = 1.0;
            let mut improved = false;
            for _ in 0..30 {
                let candidate: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a - t * s).collect();
                let v = objective(&candidate);
                if v <= value {
                    theta = candidate;
                    value = v;
                    improved = true;
                    break;
                }
                t *= 0.5;
            }
            if !improved {
                break;
            }
        }
        LogisticRegression {
            bias: theta[d],
            weights: theta[..d].to_vec(),
        }
    }

    /// Predicted class (true = positive) of one row.
    pub fn predict(&self, row: &[f32]) -> bool {
        let z: f64 = self
            .weights
            .iter()
            .zip(row)
            .map(|(w, &v)| w * f64::from(v))
            .sum::<f64>()
            + self.bias;
        z > 0.0
    }
}

/// Test-fold index of every sample, as scikit-learn's `StratifiedKFold(k, shuffle=False)`:
/// classes in order of first appearance; each class's samples, in order, fill folds 0, 1, … in
/// contiguous runs whose sizes come from dealing the sorted labels round-robin.
pub fn stratified_folds(labels: &[usize], k: usize) -> Vec<usize> {
    // Class ids in order of first appearance.
    let mut classes: Vec<usize> = Vec::new();
    let encoded: Vec<usize> = labels
        .iter()
        .map(|l| match classes.iter().position(|c| c == l) {
            Some(i) => i,
            None => {
                classes.push(*l);
                classes.len() - 1
            }
        })
        .collect();
    let mut sorted = encoded.clone();
    sorted.sort_unstable();
    // sizes[class][fold] = how many of `class` fold `fold` tests: bincount(sorted[fold::k]).
    let mut sizes = vec![vec![0usize; k]; classes.len()];
    for (i, &class) in sorted.iter().enumerate() {
        sizes[class][i % k] += 1;
    }
    let mut folds = vec![0usize; labels.len()];
    for (class, runs) in sizes.iter().enumerate() {
        let mut fold_of_nth = runs.iter().enumerate().flat_map(|(f, &n)| std::iter::repeat_n(f, n));
        for (i, _) in encoded.iter().enumerate().filter(|(_, c)| **c == class) {
            folds[i] = fold_of_nth.next().unwrap_or(0);
        }
    }
    folds
}

/// Accuracy of a logistic-regression probe under stratified k-fold cross-validation: the fraction
/// of samples classified correctly when their fold was held out.
pub fn probe_accuracy(features: &[Vec<f32>], labels: &[bool], k: usize, c: f64) -> f64 {
    if features.is_empty() {
        return f64::NAN;
    }
    let folds = stratified_folds(&labels.iter().map(|&l| usize::from(l)).collect::<Vec<_>>(), k);
    let mut correct = 0usize;
    for fold in 0..k {
        let (train_x, train_y): (Vec<Vec<f32>>, Vec<bool>) = features
            .iter()
            .zip(labels)
            .zip(&folds)
            .filter(|(_, f)| **f != fold)
            .map(|((x, y), _)| (x.clone(), *y))
            .unzip();
        let model = LogisticRegression::fit(&train_x, &train_y, c);
        correct += features
            .iter()
            .zip(labels)
            .zip(&folds)
            .filter(|(_, f)| **f == fold)
            .filter(|((x, y), _)| model.predict(x) == **y)
            .count();
    }
    correct as f64 / features.len() as f64
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        z.exp() / (1.0 + z.exp())
    }
}

fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// Solves `A·x = b` for a symmetric positive definite `A` whose lower triangle is filled
/// (row-major `n×n`, overwritten by its Cholesky factor). `None` if `A` is not positive definite.
fn cholesky_solve(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut diag = a[j * n + j];
        for k in 0..j {
            diag -= a[j * n + k] * a[j * n + k];
        }
        if diag <= 0.0 {
            return None;
        }
        let diag = diag.sqrt();
        a[j * n + j] = diag;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / diag;
        }
    }
    // L·z = b, then Lᵀ·x = z.
    let mut z = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            z[i] -= a[i * n + k] * z[k];
        }
        z[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= a[k * n + i] * z[k];
        }
        z[i] /= a[i * n + i];
    }
    Some(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_feature_fit_satisfies_the_optimality_conditions() {
        // Hand check: at the optimum, w + C·Σ(pᵢ − yᵢ)xᵢ = 0 and Σ(pᵢ − yᵢ) = 0.
        let x: Vec<Vec<f32>> = [-2.0f32, -1.0, 0.5, 1.0, 2.0, -0.5].iter().map(|&v| vec![v]).collect();
        let y = [false, false, true, true, true, true];
        let m = LogisticRegression::fit(&x, &y, 1.0);
        let p: Vec<f64> = x
            .iter()
            .map(|r| sigmoid(m.weights[0] * f64::from(r[0]) + m.bias))
            .collect();
        let residual: Vec<f64> = p.iter().zip(&y).map(|(p, &t)| p - f64::from(u8::from(t))).collect();
        let gw = m.weights[0] + residual.iter().zip(&x).map(|(r, v)| r * f64::from(v[0])).sum::<f64>();
        let gb: f64 = residual.iter().sum();
        assert!(gw.abs() < 1e-9 && gb.abs() < 1e-9, "gradient {gw} {gb}");
        assert!(m.weights[0] > 0.0);
        assert!(m.predict(&[3.0]) && !m.predict(&[-3.0]));
    }

    #[test]
    fn separable_data_does_not_diverge_thanks_to_the_penalty() {
        let x: Vec<Vec<f32>> = (0..20).map(|i| vec![if i < 10 { -1.0 } else { 1.0 }, 0.3]).collect();
        let y: Vec<bool> = (0..20).map(|i| i >= 10).collect();
        let m = LogisticRegression::fit(&x, &y, 1.0);
        assert!(m.weights.iter().all(|w| w.is_finite() && w.abs() < 10.0), "{m:?}");
        assert_eq!(probe_accuracy(&x, &y, 5, 1.0), 1.0);
    }

    #[test]
    fn folds_match_sklearn_stratified_kfold() {
        // StratifiedKFold(3) on [0,0,0,0,1,1,1,0,1,1]: sorted labels dealt round-robin give
        // fold sizes (class 0, class 1) = (2,2), (2,1), (1,2); each class fills them in order.
        let labels = [0, 0, 0, 0, 1, 1, 1, 0, 1, 1];
        assert_eq!(stratified_folds(&labels, 3), vec![0, 0, 1, 1, 0, 0, 1, 2, 2, 2]);
        // 100 + 100 in 10 folds: 10 of each class per fold, contiguous.
        let labels: Vec<usize> = (0..200).map(|i| i / 100).collect();
        let folds = stratified_folds(&labels, 10);
        assert_eq!(folds[0..10], [0; 10]);
        assert_eq!(folds[100..110], [0; 10]);
        assert_eq!(folds[199], 9);
    }
}
